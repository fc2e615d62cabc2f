"""SAN: Side Adapter Network for open-vocabulary semantic segmentation (Xu et al., CVPR 2023),
as MMSegmentation 1.2.2 implements it (``SideAdapterCLIPHead``, ``MultimodalEncoderDecoder``).

A frozen CLIP ViT is split in two. Its first blocks encode a downscaled copy of the image; the
patch embedding and some block outputs are fused into a small, trainable *side adapter* ViT that
runs on the full-resolution image with ``Q`` learnable query tokens. The adapter predicts, per
query, a mask proposal and an attention bias. CLIP's last blocks then run once more over its own
tokens plus ``Q`` copies of the class token ([SOS] tokens), each [SOS] token attending to the
patches through its query's bias; after ``ln_post`` and ``proj`` each is an embedding of its mask
in CLIP's joint space, classified against the text embeddings of the class names and a learned
"no object" embedding. Semantic scores are ``sum_q softmax(class)[q, :-1] * sigmoid(mask)[q]``.

In segkit the visual side is one encoder, :class:`SANEncoder` (the open_clip ViT under
``visual.*`` plus :class:`SideAdapter` under ``side_adapter.*``); :class:`SANHead` holds the text
tower and the "no object" embedding. Pure PyTorch, any input size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.heads.mask_matching import MaskClassificationLoss
from segkit.models.openvocab.clip import create_clip
from segkit.models.openvocab.head import OpenVocabHead
from segkit.models.openvocab.image import clip_tokens
from segkit.models.openvocab.text import CLIPTextEncoder

__all__ = [
    "SANEncoder",
    "SANFeatures",
    "SANHead",
    "SideAdapter",
    "mmseg_san_to_segkit",
    "recognition_attn_mask",
]


# ----------------------------------------------------------------------------- side adapter
class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``(N, C, H, W)`` maps (ConvNeXt's, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class CLIPFusion(nn.Module):
    """A CLIP feature map projected to the adapter width: ``LayerNorm2d -> 1x1 conv``."""

    def __init__(self, clip_channels: int, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(clip_channels)
        self.proj = nn.Conv2d(clip_channels, dim, 1)
        nn.init.kaiming_uniform_(self.proj.weight, a=1)  # caffe2 Xavier, as MMSeg
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x))


class _Mlp(nn.Module):
    """``fc1 -> GELU -> fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdapterBlock(nn.Module):
    """Pre-norm ViT block of the side adapter (MMSeg's ``TransformerEncoderLayer``):
    ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; ``(N, L, C) -> (N, L, C)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class MLP(nn.Module):
    """``num_layers`` affine layers with ReLU between them; 1x1 convolutions when ``dense``
    (then ``(N, C, H, W)`` in and out, else ``(..., C)``)."""

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, num_layers: int, dense: bool = False
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if dense else nn.Linear
        self.layers = nn.ModuleList(layer(i, o) for i, o in pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    """Mask proposals and attention biases from the adapter's queries and patch features
    (MMSeg's ``MLPMaskDecoder``).

    Args:
        dim: adapter width.
        bias_heads: attention heads the biases are for (CLIP's, or 1: shared by all heads).
        bias_layers: CLIP blocks with their own bias (or 1: shared by all recognition blocks).
        embed_channels: width of the query / pixel embeddings whose products are the outputs.
        mlp_channels, mlp_layers: the three MLPs' hidden width and depth.
        rescale_bias: a learned affine ``w * bias + b`` on the biases (MMSeg's ``rescale``).

    ``forward(queries (N, Q, dim), pixels (N, dim, h, w))`` -> ``(masks (N, Q, h, w), [bias
    (N, bias_heads, Q, h, w)] * bias_layers)``.
    """

    def __init__(
        self,
        dim: int,
        bias_heads: int = 1,
        bias_layers: int = 1,
        embed_channels: int = 256,
        mlp_channels: int = 256,
        mlp_layers: int = 3,
        rescale_bias: bool = False,
    ) -> None:
        super().__init__()
        self.bias_heads, self.bias_layers = bias_heads, bias_layers
        self.query_mlp = MLP(dim, mlp_channels, embed_channels, mlp_layers)
        self.pixel_mlp = MLP(dim, mlp_channels, embed_channels, mlp_layers, dense=True)
        out = embed_channels * bias_heads * bias_layers
        self.bias_mlp = MLP(dim, mlp_channels, out, mlp_layers, dense=True)
        self.bias_scale = nn.Linear(1, 1) if rescale_bias else None

    def forward(self, queries: Tensor, pixels: Tensor) -> tuple[Tensor, list[Tensor]]:
        queries = self.query_mlp(queries)
        pix = self.pixel_mlp(pixels)
        n, c, h, w = pix.shape
        masks = torch.einsum("nqc,nchw->nqhw", queries, pix)
        keys = self.bias_mlp(pixels).reshape(n, self.bias_layers, self.bias_heads, c, h, w)
        bias = torch.einsum("nqc,nlmchw->nlmqhw", queries, keys)
        if self.bias_scale is not None:
            bias = self.bias_scale(bias[..., None])[..., 0]
        return masks, list(bias.unbind(1))


class SideAdapter(nn.Module):
    """The side adapter: a light ViT over the full-resolution image, fused with CLIP features,
    with ``num_queries`` query tokens (MMSeg's ``SideAdapterNetwork``).

    Args:
        clip_channels: width of the fused CLIP features.
        embed_dims: adapter width (240).
        patch_size: adapter patch size (16); its output stride.
        num_queries: query tokens = mask proposals (100).
        num_layers, num_heads, mlp_ratio, eps: the adapter's blocks (8, 6, 4, LayerNorm 1e-6).
        fusion_index: where each CLIP feature is added to the patch tokens: 0 before the first
            block, ``i`` after block ``i`` (1-based); one entry per CLIP feature, increasing.
        pos_grid: the grid of the learned position embedding (40x40: 640 / 16, MMSeg's),
            resized bicubically to other grids.
        in_channels, patch_bias: the patch embedding.
        decoder: keyword arguments of :class:`MaskDecoder`.

    ``forward(image (N, 3, H, W), clip_maps [(N, clip_channels, h', w')], levels)`` ->
    ``[(masks (N, Q, H/p, W/p), biases [(N, heads, Q, H/p, W/p)])]``, one per requested block
    (1-based ``levels``; the last block is always included, last).
    """

    def __init__(
        self,
        clip_channels: int,
        embed_dims: int = 240,
        patch_size: int = 16,
        num_queries: int = 100,
        num_layers: int = 8,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        eps: float = 1e-6,
        fusion_index: Sequence[int] = (0, 1, 2, 3),
        pos_grid: Sequence[int] = (40, 40),
        in_channels: int = 3,
        patch_bias: bool = True,
        decoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        fusion_index = [int(i) for i in fusion_index]
        if any(b <= a for a, b in pairwise(fusion_index)) or not (
            fusion_index and fusion_index[0] >= 0 and fusion_index[-1] <= num_layers
        ):
            raise ValueError(
                f"fusion_index must increase within 0..{num_layers}, got {fusion_index}"
            )
        self.fusion_index = fusion_index
        self.num_queries = num_queries
        self.patch_size = patch_size
        self.pos_grid = (int(pos_grid[0]), int(pos_grid[1]))
        self.patch_embed = nn.Conv2d(
            in_channels, embed_dims, patch_size, stride=patch_size, bias=patch_bias
        )
        self.pos_embed = nn.Parameter(
            torch.randn(1, self.pos_grid[0] * self.pos_grid[1], embed_dims) * 0.02
        )
        self.query_embed = nn.Parameter(torch.randn(1, num_queries, embed_dims) * 0.02)
        self.query_pos_embed = nn.Parameter(torch.randn(1, num_queries, embed_dims) * 0.02)
        self.blocks = nn.ModuleList(
            AdapterBlock(embed_dims, num_heads, mlp_ratio, eps) for _ in range(num_layers)
        )
        self.fusions = nn.ModuleList(CLIPFusion(clip_channels, embed_dims) for _ in fusion_index)
        self.mask_decoder = MaskDecoder(embed_dims, **dict(decoder or {}))

    def _pos_embed(self, grid: tuple[int, int]) -> Tensor:
        if grid == self.pos_grid:
            return self.pos_embed
        gh, gw = self.pos_grid
        pos = self.pos_embed.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def _fuse(self, i: int, x: Tensor, clip_map: Tensor, grid: tuple[int, int]) -> Tensor:
        fused = self.fusions[i](clip_map)
        fused = F.interpolate(fused, size=grid, mode="bilinear", align_corners=False)
        q = self.num_queries
        return torch.cat([x[:, :q], x[:, q:] + fused.flatten(2).transpose(1, 2)], dim=1)

    def forward(
        self, image: Tensor, clip_maps: Sequence[Tensor], levels: Sequence[int] = ()
    ) -> list[tuple[Tensor, list[Tensor]]]:
        if len(clip_maps) != len(self.fusion_index):
            raise ValueError(
                f"{len(self.fusion_index)} CLIP features expected, got {len(clip_maps)}"
            )
        x = self.patch_embed(image)
        n, _, gh, gw = x.shape
        grid = (gh, gw)
        x = x.flatten(2).transpose(1, 2)
        q = self.num_queries
        pos = torch.cat(
            [self.query_pos_embed.expand(n, -1, -1), self._pos_embed(grid).expand(n, -1, -1)], 1
        )
        x = torch.cat([self.query_embed.expand(n, -1, -1), x], dim=1) + pos
        fused = 0
        if self.fusion_index[0] == 0:
            x = self._fuse(0, x, clip_maps[0], grid)
            fused = 1
        outs = []
        depth = len(self.blocks)
        for index, block in enumerate(self.blocks, start=1):
            x = block(x)
            if fused < len(self.fusion_index) and index == self.fusion_index[fused]:
                x = self._fuse(fused, x, clip_maps[fused], grid)
                fused += 1
            if index in levels or index == depth:
                pixels = x[:, q:].transpose(1, 2).reshape(n, -1, gh, gw)
                outs.append(self.mask_decoder(x[:, :q], pixels))
            if index < depth:
                x = x + pos
        return outs


# ----------------------------------------------------------------------------- recognition
def recognition_attn_mask(bias: Tensor, num_heads: int, grid: tuple[int, int]) -> Tensor:
    """The additive attention mask of CLIP's recognition blocks over ``[SOS x Q, CLS, patches]``.

    ``bias (N, 1 or num_heads, Q, h, w)`` (the adapter's, max-pooled to CLIP's ``grid``) ->
    ``(N * num_heads, Q + 1 + L, Q + 1 + L)``: no token attends to the [SOS] tokens but each
    [SOS] token to itself; [SOS] tokens do not attend to the class token and attend to the
    patches through their bias; class and patch tokens attend to each other freely. Blocked
    entries are -100 (MMSeg's value), not -inf.
    """
    n, heads, q = bias.shape[:3]
    if heads not in (1, num_heads):
        raise ValueError(f"attention bias for {heads} heads, CLIP has {num_heads}")
    bias = F.adaptive_max_pool2d(bias.flatten(1, 2), grid).reshape(n, heads, q, -1)
    bias = bias.expand(n, num_heads, -1, -1).reshape(n * num_heads, q, -1)
    total = q + 1 + bias.shape[-1]
    mask = bias.new_zeros(total, total)
    mask[:, :q] = -100.0
    idx = torch.arange(q, device=bias.device)
    mask[idx, idx] = 0.0
    mask[:q, q] = -100.0
    mask = mask.expand(n * num_heads, -1, -1).clone()
    mask[:, :q, q + 1 :] = bias
    return mask


@dataclass
class SANFeatures:
    """What :class:`SANEncoder` gives the head.

    Attributes:
        masks: mask logits ``(N, Q, h, w)`` per supervised level (last = final), at the
            adapter's stride of the padded input.
        queries: L2-normalised mask embeddings ``(N, Q, D)`` per level, in CLIP's joint space.
        levels: the adapter blocks (1-based) the entries come from.
        size: ``(H, W)`` of the input before padding.
        padded: ``(H, W)`` after padding to the size divisor.
    """

    masks: list[Tensor]
    queries: list[Tensor]
    levels: list[int]
    size: tuple[int, int]
    padded: tuple[int, int]


class SANEncoder(nn.Module):
    """CLIP ViT + side adapter: mask proposals and their CLIP embeddings (see the module doc).

    Args:
        name, pretrained, cache_dir, model_kwargs, quick_gelu: the open_clip model, as
            :func:`~segkit.models.openvocab.clip.create_clip` (its visual tower is kept).
        clip_out_indices: CLIP blocks (0-based) whose outputs feed the adapter; the blocks after
            the last one are the recognition blocks (ViT-B/16: 2, 5, 8, then blocks 9-11).
        clip_out_origin: also feed the patch embedding (after ``ln_pre``) first.
        clip_scale: the CLIP input is the (padded) image resized by this factor (bilinear, as
            ``F.interpolate(scale_factor=)``): MMSeg's ``encoder_resolution`` (0.5 for ViT-B/16,
            0.7 for ViT-L/14); ``None``: the image itself.
        size_divisor: inputs are zero-padded (bottom/right, after normalisation) to a multiple
            of this, as MMSeg's data preprocessor does; predictions are cropped back. ``None``:
            no padding.
        adapter: keyword arguments of :class:`SideAdapter` (``clip_channels`` is CLIP's width).
        deep_supervision: adapter blocks (1-based) whose predictions are also trained (MMSeg's
            ``deep_supervision_idxs``); eval uses the last block only.
        final_norm: L2-normalise the mask embeddings.
        trainable: substrings of the CLIP parameter names left trainable; the rest is frozen
            (MMSeg: the position embedding only).

    ``forward(x (N, 3, H, W), normalised)`` -> ``[SANFeatures]``. ``channels`` is CLIP's joint
    embedding size, ``strides`` the adapter's patch size.
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        cache_dir: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        quick_gelu: bool | None = None,
        clip_out_indices: Sequence[int] = (2, 5, 8),
        clip_out_origin: bool = True,
        clip_scale: float | None = 0.5,
        size_divisor: int | None = 32,
        adapter: Mapping[str, Any] | None = None,
        deep_supervision: Sequence[int] = (7,),
        final_norm: bool = True,
        trainable: Sequence[str] = ("positional_embedding",),
    ) -> None:
        super().__init__()
        from open_clip.transformer import VisionTransformer

        visual = create_clip(name, pretrained, cache_dir, model_kwargs, quick_gelu).visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
            raise ValueError(f"{name}: SAN needs an open_clip ViT image tower, got {type(visual)}")
        if not visual.transformer.batch_first:
            raise ValueError("open_clip transformers with batch_first=False are not supported")
        self.visual = visual.train()  # create_clip returns eval mode; follow the segmentor's
        depth = len(visual.transformer.resblocks)
        self.clip_out_indices = [int(i) for i in clip_out_indices]
        if not self.clip_out_indices or self.clip_out_indices != sorted(set(self.clip_out_indices)):
            raise ValueError(f"clip_out_indices must increase, got {self.clip_out_indices}")
        self.split = self.clip_out_indices[-1] + 1  # first recognition block
        if not 0 < self.split < depth:
            raise ValueError(
                f"clip_out_indices {self.clip_out_indices} leave no recognition blocks "
                f"({name} has {depth})"
            )
        self.clip_out_origin = clip_out_origin
        self.clip_scale = clip_scale
        self.size_divisor = size_divisor
        self.deep_supervision = [int(i) for i in deep_supervision]
        self.final_norm = final_norm
        width = visual.conv1.out_channels
        self.num_heads = visual.transformer.resblocks[0].attn.num_heads
        adapter = dict(adapter or {})
        decoder = dict(adapter.pop("decoder", None) or {})
        decoder.setdefault("bias_heads", self.num_heads)
        if decoder.get("bias_layers", 1) not in (1, depth - self.split):
            raise ValueError(
                f"decoder.bias_layers must be 1 or the {depth - self.split} recognition blocks"
            )
        self.side_adapter = SideAdapter(clip_channels=width, decoder=decoder, **adapter)
        n_features = len(self.clip_out_indices) + int(clip_out_origin)
        if n_features != len(self.side_adapter.fusion_index):
            raise ValueError(
                f"{n_features} CLIP features but {len(self.side_adapter.fusion_index)} fusion "
                "indices"
            )
        self.embed_dim = visual.output_dim
        self.channels = [visual.output_dim]
        self.strides = [self.side_adapter.patch_size]
        for pname, param in self.visual.named_parameters():
            param.requires_grad_(any(t in pname for t in trainable))

    def _clip_features(self, x: Tensor) -> tuple[list[Tensor], Tensor, tuple[int, int]]:
        """CLIP's first blocks -> (maps fed to the adapter, tokens ``(N, 1 + L, width)`` after
        the last of them, grid)."""
        v = self.visual
        x, grid = clip_tokens(v, x)
        maps = [self._to_map(x, grid)] if self.clip_out_origin else []
        for i, block in enumerate(v.transformer.resblocks[: self.split]):
            x = block(x)
            if i in self.clip_out_indices:
                maps.append(self._to_map(x, grid))
        return maps, x, grid

    @staticmethod
    def _to_map(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)

    def recognize(self, tokens: Tensor, biases: Sequence[Tensor], grid: tuple[int, int]) -> Tensor:
        """CLIP's recognition blocks with [SOS] tokens: ``tokens (N, 1 + L, width)`` (class +
        patches after the split), ``biases [(N, heads, Q, h, w)]`` (one, or one per block) ->
        mask embeddings ``(N, Q, D)``."""
        v = self.visual
        blocks = v.transformer.resblocks[self.split :]
        q = biases[0].shape[2]
        masks = [recognition_attn_mask(b, self.num_heads, grid) for b in biases]
        if len(masks) == 1:
            masks = masks * len(blocks)
        x = torch.cat([tokens[:, :1].expand(-1, q, -1), tokens], dim=1)
        for block, mask in zip(blocks, masks, strict=True):
            x = block(x, attn_mask=mask)
        out = v.ln_post(x[:, :q]) @ v.proj
        return F.normalize(out, dim=-1) if self.final_norm else out

    def forward(self, x: Tensor) -> list[SANFeatures]:
        size = (x.shape[2], x.shape[3])
        if self.size_divisor:
            d = self.size_divisor
            pad_h, pad_w = -size[0] % d, -size[1] % d
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h))
        padded = (x.shape[2], x.shape[3])
        clip_in = x
        if self.clip_scale is not None and self.clip_scale != 1:
            clip_in = F.interpolate(
                x, scale_factor=self.clip_scale, mode="bilinear", align_corners=False
            )
        maps, tokens, grid = self._clip_features(clip_in)
        levels = self.deep_supervision if self.training else []
        outs = self.side_adapter(x, maps, levels)
        return [
            SANFeatures(
                masks=[m for m, _ in outs],
                queries=[self.recognize(tokens, b, grid) for _, b in outs],
                levels=[i for i in range(1, len(self.side_adapter.blocks)) if i in levels]
                + [len(self.side_adapter.blocks)],
                size=size,
                padded=padded,
            )
        ]


# ----------------------------------------------------------------------------- head
class SANHead(OpenVocabHead):
    """Classifies SAN's mask embeddings against the class names' text embeddings plus a learned
    "no object" embedding, and combines them with the mask proposals.

    Args:
        in_channels: CLIP's joint embedding size (given by the segmentor).
        text_encoder: the CLIP text tower (MMSeg's templates: a ``templates`` list).
        class_names: the initial classes.
        ignore_index: unlabelled pixels in the training labels.
        loss: keyword arguments of :class:`~segkit.models.heads.mask_matching.MaskClassificationLoss`
            (class weight of "no object", loss weights, points), for every class count.
        threshold, target_key: as :class:`~segkit.models.openvocab.OpenVocabHead`.

    ``forward(SANFeatures)``: in eval the scores ``(N, K, H, W)`` of the current classes at the
    input size (mask logits upsampled bilinearly to the padded input, then cropped, as MMSeg);
    in training ``{"cls": [(N, Q, K + 1)], "masks": [(N, Q, h, w)], "levels", "padded"}``.
    """

    def __init__(
        self,
        in_channels: int,
        text_encoder: CLIPTextEncoder,
        class_names: Sequence[str],
        ignore_index: int = 255,
        loss: Mapping[str, Any] | None = None,
        threshold: float | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__(text_encoder, class_names, threshold, losses=[], target_key=target_key)
        if in_channels != text_encoder.embed_dim:
            raise ValueError(
                f"mask embeddings have {in_channels} channels, text embeddings "
                f"{text_encoder.embed_dim}"
            )
        self.bg_embed = nn.Parameter(torch.randn(1, in_channels) * in_channels**-0.5)
        self.ignore_index = ignore_index
        self.loss_cfg = dict(loss or {})

    def classifier(self) -> Tensor:
        """``(K + 1, D)``: the class names' embeddings and "no object", L2-normalised, times
        CLIP's temperature."""
        text = self.text_embeddings().to(self.bg_embed)
        weights = F.normalize(torch.cat([text, self.bg_embed]), dim=-1)
        return self.text_encoder.logit_scale.to(weights) * weights

    def forward(self, features: SANFeatures) -> Tensor | dict[str, Any]:
        classifier = self.classifier()
        cls = [torch.einsum("nqd,kd->nqk", q, classifier.to(q)) for q in features.queries]
        if self.training:
            return {
                "cls": cls,
                "masks": features.masks,
                "levels": features.levels,
                "padded": features.padded,
            }
        masks = F.interpolate(
            features.masks[-1], size=features.padded, mode="bilinear", align_corners=False
        )
        scores = torch.einsum("nqk,nqhw->nkhw", cls[-1].softmax(-1)[..., :-1], masks.sigmoid())
        h, w = features.size
        return scores[:, :, :h, :w]

    def loss(self, outputs: Mapping[str, Any], batch: Mapping[str, Any], prefix: str = "") -> dict:
        """Hungarian-matched class + mask + dice losses on every level (MMSeg's SAN losses;
        earlier levels named ``d{block}.*``). Labels are padded with ``ignore_index`` to the
        padded input, as MMSeg pads them."""
        label = batch[self.target_key]
        ph, pw = outputs["padded"]
        if label.shape[-2:] != (ph, pw):
            label = F.pad(
                label, (0, pw - label.shape[-1], 0, ph - label.shape[-2]), value=self.ignore_index
            )
        criterion = MaskClassificationLoss(
            self.num_classes, ignore_index=self.ignore_index, **self.loss_cfg
        ).to(label.device)
        raw = criterion(outputs["cls"], outputs["masks"], label)
        losses = {}
        for key, value in raw.items():
            if key.startswith("d"):
                layer, name = key.split(".", 1)
                key = f"d{outputs['levels'][int(layer[1:])]}.{name}"
            losses[prefix + key] = value
        return losses


# ----------------------------------------------------------------------------- conversion
def mmseg_san_to_segkit(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Renumber and reshape an MMSeg SAN state dict before the key renaming of
    ``conf/convert/mmseg/san_*.yaml``: the recognition blocks ``rec_with_attnbias.layers.i``
    follow the image encoder's ``n`` blocks as CLIP blocks ``n + i``; ``rec_with_attnbias.proj``
    (an ``nn.Linear``) is transposed to open_clip's ``proj``; the class token and position
    embedding lose their batch dimensions."""
    rec = "decode_head.rec_with_attnbias."
    first = [int(k.split(".")[2]) for k in state if k.startswith("image_encoder.layers.")]
    if not first:
        raise ValueError("not an MMSeg SAN state dict: no image_encoder.layers.*")
    split = max(first) + 1
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(rec + "layers."):
            index, rest = key[len(rec + "layers.") :].split(".", 1)
            key = f"{rec}layers.{int(index) + split}.{rest}"
        elif key == rec + "proj.weight":
            value = value.t().contiguous()
        elif key == "image_encoder.cls_token":
            value = value.reshape(-1)
        elif key == "image_encoder.pos_embed":
            value = value.reshape(value.shape[-2:])
        out[key] = value
    return out
