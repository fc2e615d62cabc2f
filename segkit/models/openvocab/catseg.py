"""CAT-Seg: cost aggregation for open-vocabulary semantic segmentation (Cho et al., CVPR 2024).

CAT-Seg does not classify CLIP's image embeddings with the text embeddings; it segments the
*cost volume* between them. For ``N`` images, ``K`` class names and ``T`` prompt templates:

1. cost: cosine similarity of every dense CLIP image embedding with every (class, template) text
   embedding, ``(N, K, T, h, w)`` at CLIP's patch stride;
2. cost embedding: a 7x7 convolution maps the ``T`` templates of each class to ``C`` channels;
3. ``L`` aggregation layers, each a *spatial* aggregation (two Swin blocks, plain then shifted
   windows, applied to each class's ``(C, h, w)`` map, with the projected CLIP image embedding
   concatenated to the queries and keys) followed by a *class* aggregation (a transformer layer
   across the ``K`` classes at every (pooled) position, linear attention, with the projected
   text embedding concatenated to the queries and keys);
4. an upsampling decoder, two transposed-conv stages (x4), each concatenating guidance from an
   intermediate CLIP layer, then a 3x3 conv to one logit per class and pixel.

Every step is shared across classes, so no weight depends on ``K``: the class list is free text
at run time. Both CLIP towers are fine-tuned (attention layers only, ``finetune: attention``).

In segkit: ``Segmentor(encoder=CATSegImageEncoder, decoder=FeatureList, heads={"seg": CATSegHead})``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Mlp, trunc_normal_
from timm.models.swin_transformer import window_partition, window_reverse
from torch import Tensor, nn

from segkit.models.losses.binary_cross_entropy import BinaryCrossEntropyLoss
from segkit.models.openvocab.head import NO_CLASS, OpenVocabHead
from segkit.models.openvocab.image import CLIPImageEncoder
from segkit.models.openvocab.text import CLIPTextEncoder

__all__ = [
    "CATSegAggregator",
    "CATSegHead",
    "CATSegImageEncoder",
    "ClassAggregation",
    "FeatureList",
    "GuidedSwinBlock",
    "SpatialAggregation",
]

FILTERED_LOGIT = -100.0  # logit of classes left out by the top-``pad_len`` filter


# --------------------------------------------------------------------------- image encoder
class CATSegImageEncoder(CLIPImageEncoder):
    """:class:`CLIPImageEncoder` at CAT-Seg's input resolution.

    CAT-Seg's dense last block (``forward_dense``: every token attends only to itself, i.e. its
    own value through the output projection, kept with the residual and the MLP) is the
    ``maskclip`` mode of :class:`CLIPImageEncoder`, the default here.

    Args:
        input_size: ``(h, w)`` the images are resized to (bilinear) before the tower, CAT-Seg's
            ``clip_resolution`` (384x384 for ViT-B/16, 336x336 for ViT-L/14: a 24x24 grid);
            ``None`` takes any size divisible by the patch size.
        name, pretrained, dense, out_indices, cache_dir, model_kwargs, quick_gelu, finetune: as
            :class:`CLIPImageEncoder`.

    ``forward(images (N, 3, H, W), normalised)`` -> ``[block maps (N, width, h, w) ...,
    dense embedding (N, embed_dim, h, w)]``, ``h, w`` = ``input_size`` (or ``H, W``) / patch.
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        dense: str = "maskclip",
        out_indices: Sequence[int] = (),
        input_size: Sequence[int] | None = None,
        cache_dir: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        quick_gelu: bool | None = None,
        finetune: str = "none",
    ) -> None:
        super().__init__(
            name, pretrained, dense, out_indices, cache_dir, model_kwargs, quick_gelu, finetune
        )
        self.input_size = tuple(int(s) for s in input_size) if input_size else None
        if self.input_size and any(s % self.patch_size for s in self.input_size):
            raise ValueError(f"input_size {self.input_size} not divisible by {self.patch_size}")

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return super().forward(x)


class FeatureList(nn.Module):
    """Pass-through decoder: the encoder's feature maps, all of them, for heads that take a list.

    Args:
        in_channels, in_strides: the encoder's (given by the segmentor); ``channels`` and
            ``strides`` repeat them.
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int]) -> None:
        super().__init__()
        self.channels = [int(c) for c in in_channels]
        self.strides = [int(s) for s in in_strides]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return list(features)


# --------------------------------------------------------------------------- spatial aggregation
def _relative_position_index(window: tuple[int, int], table: tuple[int, int]) -> Tensor:
    """Index into a ``(2 Wh - 1) (2 Ww - 1)`` relative-position table (``table = (Wh, Ww)``) for
    every token pair of a ``window <= table`` window: ``(wh ww, wh ww)`` int64."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")
    ).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + table[0] - 1) * (2 * table[1] - 1) + rel[1] + table[1] - 1


def _shift_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> Tensor:
    """Swin's mask of a cyclically shifted ``size`` map: ``(windows, n, n)``, 0 within a region,
    -100 across regions (tokens that the roll brought next to each other)."""
    regions = torch.zeros(1, *size, 1)
    label = 0
    spans = [
        (slice(0, -w), slice(-w, -s), slice(-s, None)) if s else (slice(0, None),)
        for w, s in zip(window, shift)
    ]
    for hs in spans[0]:
        for ws in spans[1]:
            regions[:, hs, ws] = label
            label += 1
    regions = window_partition(regions, window).flatten(1)
    mask = regions[:, None, :] - regions[:, :, None]
    return mask.masked_fill(mask != 0, -100.0)


class GuidedWindowAttention(nn.Module):
    """Window self-attention with a relative position bias whose queries and keys also see a
    guidance vector per token (values do not).

    Args:
        dim: token channels ``C``.
        guidance_dim: guidance channels ``G`` concatenated to the tokens (0: none).
        num_heads: attention heads (``C`` divisible by it).
        window_size: the largest window ``(Wh, Ww)`` (size of the bias table).

    ``forward(x (B, n, C + G), window (wh, ww) <= window_size, mask (nW, n, n) or None)`` ->
    ``(B, n, C)``, ``n = wh ww``, ``B`` a multiple of ``nW``.
    """

    def __init__(
        self, dim: int, guidance_dim: int, num_heads: int, window_size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.window_size = tuple(window_size)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, window: tuple[int, int], mask: Tensor | None = None) -> Tensor:
        b, n, _ = x.shape
        heads = self.num_heads
        q = self.q(x).view(b, n, heads, -1).transpose(1, 2) * self.scale
        k = self.k(x).view(b, n, heads, -1).transpose(1, 2)
        v = self.v(x[..., : self.dim]).view(b, n, heads, -1).transpose(1, 2)
        index = _relative_position_index(window, self.window_size).to(x.device)
        bias = self.relative_position_bias_table[index.flatten()].view(n, n, heads)
        attn = q @ k.transpose(-2, -1) + bias.permute(2, 0, 1)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, heads, n, n) + mask[None, :, None]).view(b, heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dim))


class GuidedSwinBlock(nn.Module):
    """A Swin block (pre-norm window attention + MLP, both residual) with guidance concatenated
    to the normalised tokens before the attention.

    Maps not divisible by the window are zero-padded (bottom, right); a side no longer than the
    window gets one window of its own length, unshifted (as timm's Swin).

    Args:
        dim, guidance_dim, num_heads: as :class:`GuidedWindowAttention`.
        window_size: window side (tokens).
        shift: cyclic shift (tokens); Swin uses ``window_size // 2`` in every second block.
        mlp_ratio: MLP hidden width / ``dim``.

    ``forward(x (B, H, W, C), guidance (B, H, W, G) or None)`` -> ``(B, H, W, C)``.
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        num_heads: int,
        window_size: int,
        shift: int = 0,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.window_size = int(window_size)
        self.shift = int(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads, (window_size,) * 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, guidance: Tensor | None = None) -> Tensor:
        _, h, w, c = x.shape
        window = (min(self.window_size, h), min(self.window_size, w))
        shift = tuple(self.shift if side > self.window_size else 0 for side in (h, w))
        y = self.norm1(x)
        if guidance is not None:
            y = torch.cat([y, guidance], dim=-1)
        y = F.pad(y, (0, 0, 0, -w % window[1], 0, -h % window[0]))
        hp, wp = y.shape[1:3]
        mask = None
        if any(shift):
            y = torch.roll(y, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = _shift_mask((hp, wp), window, shift).to(y)
        windows = window_partition(y, window).flatten(1, 2)
        y = self.attn(windows, window, mask).view(-1, *window, c)
        y = window_reverse(y, window, hp, wp)
        if any(shift):
            y = torch.roll(y, shifts=shift, dims=(1, 2))
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """CAT-Seg's spatial aggregation: two guided Swin blocks (plain, then shifted windows) on each
    class's cost embedding, guided by the layer-normed projected image embedding.

    ``forward(x (N, K, C, h, w), guidance (N, G, h, w) or None)`` -> ``(N, K, C, h, w)``.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.block_1 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, 0)
        self.block_2 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, window_size // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    def forward(self, x: Tensor, guidance: Tensor | None) -> Tensor:
        n, k, c, h, w = x.shape
        x = x.permute(0, 1, 3, 4, 2).reshape(n * k, h, w, c)
        if guidance is not None and self.guidance_norm is not None:
            g = self.guidance_norm(guidance.permute(0, 2, 3, 1))
            guidance = g[:, None].expand(n, k, h, w, g.shape[-1]).reshape(n * k, h, w, -1)
        else:
            guidance = None
        x = self.block_2(self.block_1(x, guidance), guidance)
        return x.view(n, k, h, w, c).permute(0, 1, 4, 2, 3)


# --------------------------------------------------------------------------- class aggregation
def linear_attention(q: Tensor, k: Tensor, v: Tensor, eps: float = 1e-6) -> Tensor:
    """Linear attention with the ``elu + 1`` feature map (Katharopoulos et al. 2020, as LoFTR):
    ``q (B, L, H, D)``, ``k, v (B, S, H, D)`` -> ``(B, L, H, D)``; cost linear in ``L`` and ``S``."""
    q, k = F.elu(q) + 1, F.elu(k) + 1
    length = v.shape[1]
    kv = torch.einsum("bshd,bshe->bhde", k, v / length)  # values scaled: no fp16 overflow
    z = 1 / (torch.einsum("blhd,bhd->blh", q, k.sum(dim=1)) + eps)
    return torch.einsum("blhd,bhde,blh->blhe", q, kv, z) * length


def full_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention, same shapes as :func:`linear_attention`."""
    weights = torch.einsum("blhd,bshd->bhls", q, k).mul(q.shape[-1] ** -0.5).softmax(dim=-1)
    return torch.einsum("bhls,bshd->blhd", weights, v)


class GuidedAttention(nn.Module):
    """Multi-head attention over a token sequence whose queries and keys see a guidance vector
    per token; no output projection (CAT-Seg's class attention).

    ``forward(x (B, L, C), guidance (B, L, G) or None)`` -> ``(B, L, C)``.
    """

    def __init__(
        self, dim: int, guidance_dim: int, num_heads: int, attention_type: str = "linear"
    ) -> None:
        super().__init__()
        if attention_type not in ("linear", "full"):
            raise ValueError(f"attention_type must be 'linear' or 'full', got {attention_type!r}")
        self.num_heads = num_heads
        self.attention_type = attention_type
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, x: Tensor, guidance: Tensor | None) -> Tensor:
        qk = torch.cat([x, guidance], dim=-1) if guidance is not None else x
        b, length, dim = x.shape
        q, k, v = (
            t.view(b, length, self.num_heads, -1) for t in (self.q(qk), self.k(qk), self.v(x))
        )
        attend = linear_attention if self.attention_type == "linear" else full_attention
        return attend(q, k, v).reshape(b, length, dim)


class ClassAggregation(nn.Module):
    """CAT-Seg's class aggregation: a pre-norm transformer layer across the ``K`` classes at each
    position of the average-pooled cost embedding, with the text guidance concatenated to queries
    and keys; the update is upsampled back (bilinear) and added to the input.

    Args:
        dim: cost embedding channels ``C``.
        guidance_dim: text guidance channels (0: none).
        num_heads, attention_type: as :class:`GuidedAttention`.
        pooling_size: average-pooling window ``(ph, pw)`` before the attention.
        pad_len: class sequences shorter than this are padded with learned tokens (and learned
            guidance) to this length, so that linear attention sees sequences of one length
            whatever the number of classes (CAT-Seg's released code); 0: no padding.

    ``forward(x (N, K, C, h, w), guidance (N, K, G) or None)`` -> ``(N, K, C, h, w)``.
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        num_heads: int,
        attention_type: str = "linear",
        pooling_size: Sequence[int] = (2, 2),
        pad_len: int = 0,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(tuple(pooling_size))
        self.attention = GuidedAttention(dim, guidance_dim, num_heads, attention_type)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pad_len = int(pad_len)
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim)) if pad_len > 0 else None
        self.padding_guidance = (
            nn.Parameter(torch.zeros(1, 1, guidance_dim))
            if pad_len > 0 and guidance_dim > 0
            else None
        )

    def forward(self, x: Tensor, guidance: Tensor | None) -> Tensor:
        n, k, c, h, w = x.shape
        pooled = self.pool(x.flatten(0, 1))
        ph, pw = pooled.shape[2:]
        tokens = pooled.view(n, k, c, ph * pw).permute(0, 3, 1, 2).reshape(n * ph * pw, k, c)
        pad = self.pad_len - k if self.padding_tokens is not None else 0
        if pad > 0:
            tokens = torch.cat([tokens, self.padding_tokens.expand(n * ph * pw, pad, c)], dim=1)
        if guidance is not None:
            if pad > 0 and self.padding_guidance is not None:
                extra = self.padding_guidance.expand(n, pad, -1)
                guidance = torch.cat([guidance, extra], dim=1)
            guidance = guidance[:, None].expand(n, ph * pw, *guidance.shape[1:]).flatten(0, 1)
        tokens = tokens + self.attention(self.norm1(tokens), guidance)
        tokens = tokens + self.mlp(self.norm2(tokens))
        update = tokens[:, :k].reshape(n, ph, pw, k, c).permute(0, 3, 4, 1, 2)
        update = F.interpolate(
            update.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=True
        )
        return x + update.view(n, k, c, h, w)


# --------------------------------------------------------------------------- decoder
class GuidedUpsample(nn.Module):
    """One decoder stage: a 2x transposed conv to ``in - guidance`` channels, the guidance map
    concatenated, then two 3x3 conv + GroupNorm (16 channels per group) + ReLU.

    ``forward(x (B, in, h, w), guidance (B', guidance, 2h, 2w) or None)`` -> ``(B, out, 2h, 2w)``;
    ``B`` a multiple of ``B'`` (the guidance of an image is shared by its classes).
    """

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int = 0) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(
            in_channels, in_channels - guidance_channels, kernel_size=2, stride=2
        )
        groups = max(out_channels // 16, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, guidance: Tensor | None = None) -> Tensor:
        x = self.up(x)
        if guidance is not None:
            repeats = x.shape[0] // guidance.shape[0]
            x = torch.cat([x, guidance.repeat_interleave(repeats, dim=0)], dim=1)
        return self.conv(x)


# --------------------------------------------------------------------------- aggregator
class CATSegAggregator(nn.Module):
    """Cost volume -> per-class logits at 4x CLIP's grid (CAT-Seg's ``Aggregator``).

    Args:
        embed_dim: CLIP's joint embedding size ``D`` (image and text).
        num_templates: prompt templates ``T`` per class (the cost embedding's input channels).
        hidden_dim: cost embedding channels ``C``.
        num_layers: aggregation layers (spatial + class).
        num_heads: attention heads of both aggregations.
        window_size: Swin window side (tokens).
        pooling_size: average pooling before the class aggregation.
        attention_type: class aggregation attention, ``"linear"`` or ``"full"``.
        pad_len: class sequence length (see :class:`ClassAggregation`); with more classes than
            this, each image keeps the ``pad_len`` classes of highest cost and the others get
            logit -100. 0: off.
        text_guidance_dim, appearance_guidance_dim: projected guidance sizes (0: no guidance).
        decoder_dims: output channels of each 2x upsampling stage.
        decoder_guidance_dims: channels of the intermediate guidance maps, one per stage from the
            first (fewer than stages: the last stages have none).
        decoder_guidance_proj_dims: their projected sizes.

    ``forward(image (N, D, h, w), text (N, K, T, D), decoder_guidance [(N, c_i, 2^(i+1) h,
    2^(i+1) w)])`` -> logits ``(N, K, 2^S h, 2^S w)``, ``S = len(decoder_dims)``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_templates: int,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        window_size: int = 12,
        pooling_size: Sequence[int] = (2, 2),
        attention_type: str = "linear",
        pad_len: int = 256,
        text_guidance_dim: int = 128,
        appearance_guidance_dim: int = 128,
        decoder_dims: Sequence[int] = (64, 32),
        decoder_guidance_dims: Sequence[int] = (256, 128),
        decoder_guidance_proj_dims: Sequence[int] = (32, 16),
    ) -> None:
        super().__init__()
        if len(decoder_guidance_dims) != len(decoder_guidance_proj_dims):
            raise ValueError(
                "decoder_guidance_dims and decoder_guidance_proj_dims differ in length"
            )
        if len(decoder_guidance_dims) > len(decoder_dims):
            raise ValueError("more decoder guidance maps than decoder stages")
        self.pad_len = int(pad_len)
        self.cost_embed = nn.Conv2d(num_templates, hidden_dim, kernel_size=7, padding=3)
        self.appearance_guidance = (
            nn.Sequential(nn.Conv2d(embed_dim, appearance_guidance_dim, 3, padding=1), nn.ReLU())
            if appearance_guidance_dim > 0
            else None
        )
        self.text_guidance = (
            nn.Sequential(nn.Linear(embed_dim, text_guidance_dim), nn.ReLU())
            if text_guidance_dim > 0
            else None
        )
        self.spatial = nn.ModuleList(
            SpatialAggregation(hidden_dim, appearance_guidance_dim, num_heads, window_size)
            for _ in range(num_layers)
        )
        self.classes = nn.ModuleList(
            ClassAggregation(
                hidden_dim, text_guidance_dim, num_heads, attention_type, pooling_size, pad_len
            )
            for _ in range(num_layers)
        )
        self.decoder_guidance = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, p, 3, padding=1), nn.ReLU())
            for c, p in zip(decoder_guidance_dims, decoder_guidance_proj_dims)
        )
        guidance = list(decoder_guidance_proj_dims)
        guidance += [0] * (len(decoder_dims) - len(guidance))
        ins = [hidden_dim, *decoder_dims[:-1]]
        self.decoder = nn.ModuleList(
            GuidedUpsample(i, o, g) for i, o, g in zip(ins, decoder_dims, guidance)
        )
        self.head = nn.Conv2d(decoder_dims[-1], 1, kernel_size=3, padding=1)

    def forward(self, image: Tensor, text: Tensor, decoder_guidance: Sequence[Tensor]) -> Tensor:
        n, k = text.shape[:2]
        img = F.normalize(image, dim=1)
        cost = torch.einsum("ndhw,nktd->nkthw", img, F.normalize(text, dim=-1))
        keep = None
        if 0 < self.pad_len < k:  # too many classes: keep the best-matching pad_len per image
            keep = cost.flatten(2).amax(dim=2).topk(self.pad_len, dim=1, sorted=False).indices
            text = text.gather(1, keep[:, :, None, None].expand(-1, -1, *text.shape[2:]))
            cost = cost.gather(1, keep[:, :, None, None, None].expand(-1, -1, *cost.shape[2:]))
        kept = text.shape[1]
        h, w = cost.shape[-2:]
        x = self.cost_embed(cost.flatten(0, 1)).view(n, kept, -1, h, w)
        appearance = self.appearance_guidance(image) if self.appearance_guidance else None
        text_guidance = None
        if self.text_guidance is not None:
            text_guidance = self.text_guidance(F.normalize(text.mean(dim=2), dim=-1))
        for spatial, classes in zip(self.spatial, self.classes):
            x = classes(spatial(x, appearance), text_guidance)
        x = x.flatten(0, 1)
        for i, stage in enumerate(self.decoder):
            g = (
                self.decoder_guidance[i](decoder_guidance[i])
                if i < len(self.decoder_guidance)
                else None
            )
            x = stage(x, g)
        logits = self.head(x).view(n, kept, *x.shape[2:])
        if keep is not None:
            full = logits.new_full((n, k, *logits.shape[2:]), FILTERED_LOGIT)
            logits = full.scatter(1, keep[:, :, None, None].expand_as(logits), logits)
        return logits


# --------------------------------------------------------------------------- head
class CATSegHead(OpenVocabHead):
    """CAT-Seg on CLIP features: guidance upsampling, cost aggregation, per-class logits.

    Args:
        in_channels: the encoder's channels, ``[width] * M + [embed_dim]``: ``M`` intermediate
            CLIP layers (decoder guidance, earliest first) and the dense embedding.
        text_encoder: the CLIP text tower; its templates are the cost volume's ``T``.
        class_names: the training classes (change with :meth:`set_classes`).
        decoder_guidance_dims: the transposed convs from the ``M`` intermediate maps
            (``width`` channels at CLIP's grid) to these channels at 2x, 4x, ... the grid, the
            resolutions of the decoder stages (CAT-Seg: 256 at 2x from layer 3, 128 at 4x from
            layer 7 of ViT-B/16).
        hidden_dim, num_layers, num_heads, window_size, pooling_size, attention_type, pad_len,
            text_guidance_dim, appearance_guidance_dim, decoder_dims, decoder_guidance_proj_dims:
            as :class:`CATSegAggregator`.
        threshold, target_key: as :class:`OpenVocabHead`.
        losses: default: per-class binary cross-entropy on one-hot targets, 255 ignored.

    ``forward(features)`` -> training: logits ``(N, K, 4h, 4w)`` for the current classes; eval:
    sigmoid scores (CAT-Seg's inference output, averaged over sliding windows).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        text_encoder: CLIPTextEncoder,
        class_names: Sequence[str],
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        window_size: int = 12,
        pooling_size: Sequence[int] = (2, 2),
        attention_type: str = "linear",
        pad_len: int = 256,
        text_guidance_dim: int = 128,
        appearance_guidance_dim: int = 128,
        decoder_dims: Sequence[int] = (64, 32),
        decoder_guidance_dims: Sequence[int] = (256, 128),
        decoder_guidance_proj_dims: Sequence[int] = (32, 16),
        threshold: float | None = None,
        losses: list[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        if losses is None:
            losses = [BinaryCrossEntropyLoss()]
        super().__init__(text_encoder, class_names, threshold, losses, target_key)
        in_channels = [int(c) for c in in_channels]
        if in_channels[-1] != text_encoder.embed_dim:
            raise ValueError(
                f"the dense image embedding has {in_channels[-1]} channels, the text embeddings "
                f"{text_encoder.embed_dim}: use the same CLIP for both towers"
            )
        if len(in_channels) - 1 != len(decoder_guidance_dims):
            raise ValueError(
                f"{len(in_channels) - 1} intermediate CLIP maps (encoder out_indices) for "
                f"{len(decoder_guidance_dims)} decoder_guidance_dims"
            )
        self.guidance_upsample = nn.ModuleList(
            nn.ConvTranspose2d(c, d, kernel_size=2 ** (i + 1), stride=2 ** (i + 1))
            for i, (c, d) in enumerate(zip(in_channels[:-1], decoder_guidance_dims))
        )
        self.aggregator = CATSegAggregator(
            text_encoder.embed_dim,
            len(text_encoder.templates),
            hidden_dim,
            num_layers,
            num_heads,
            window_size,
            pooling_size,
            attention_type,
            pad_len,
            text_guidance_dim,
            appearance_guidance_dim,
            decoder_dims,
            decoder_guidance_dims,
            decoder_guidance_proj_dims,
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """``[intermediate maps (N, width, h, w) ..., dense (N, D, h, w)]`` -> ``(N, K, 4h, 4w)``."""
        *layers, image = features
        guidance = [up(f) for up, f in zip(self.guidance_upsample, layers)]
        text = self.text_encoder.encode(self.class_names).to(image)
        text = text[None].expand(image.shape[0], *text.shape)
        logits = self.aggregator(image, text, guidance)
        return logits if self.training else logits.sigmoid()

    def postprocess(self, scores: Tensor) -> Tensor:
        """Scores ``(K, H, W)`` (sigmoid probabilities) -> labels ``(H, W)``; with a threshold,
        pixels whose best class probability stays below it get
        :data:`~segkit.models.openvocab.head.NO_CLASS` (-1)."""
        labels = scores.argmax(dim=0)
        if self.threshold is not None:
            labels = torch.where(scores.amax(dim=0) < self.threshold, NO_CLASS, labels)
        return labels
