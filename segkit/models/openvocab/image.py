"""CLIP image tower as a dense encoder: per-patch embeddings in the text embedding space.

CLIP's last attention block pools the image into the class token; its patch tokens are poorly
localised. Training-free methods change that last block so that each patch attends to patches
like itself and keep only the attention path:

- ``maskclip`` (MaskCLIP, Zhou et al. 2022): the value projection alone, no attention; residual
  and FFN kept.
- ``sclip`` (SCLIP, Wang et al. 2024): correlative attention, softmax(qq) + softmax(kk); residual
  kept, no FFN.
- ``clearclip`` (ClearCLIP, Lan et al. 2024): query-query attention; no residual, no FFN.
- ``none``: the unmodified block (for trainable models that learn on top of CLIP).

``residual`` and ``ffn`` override a mode's choice (ClearCLIP's ablations vary exactly these).

The dense output is ``ln_post`` + ``proj`` applied to every patch token, as CLIP does to the
class token, so it can be compared with text embeddings directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.openvocab.clip import create_clip
from segkit.models.openvocab.text import _set_trainable

__all__ = ["CLIPImageEncoder", "clip_tokens", "dense_attention"]

DENSE_MODES = ("none", "maskclip", "clearclip", "sclip")
# (residual, ffn) of the last block in each training-free mode, as its paper defines it.
_LAST_BLOCK = {"maskclip": (True, True), "sclip": (True, False), "clearclip": (False, False)}


def clip_tokens(visual: nn.Module, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """An open_clip ViT's input tokens: patch embedding, class token, position embedding resized
    (bicubic) to the image's grid, ``ln_pre``. ``x (N, 3, H, W)`` normalised -> tokens
    ``(N, 1 + h * w, width)`` and the grid ``(h, w)``."""
    if not visual.transformer.batch_first:
        raise ValueError("open_clip transformers with batch_first=False are not supported")
    x = visual.conv1(x)
    grid = (x.shape[2], x.shape[3])
    x = x.flatten(2).transpose(1, 2)
    pos = visual.positional_embedding
    if tuple(visual.grid_size) != grid:
        gh, gw = visual.grid_size
        patch = pos[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=grid, mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:1], patch.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)])
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    return visual.ln_pre(torch.cat([cls, x], dim=1) + pos.to(x.dtype)), grid


def dense_attention(attn: nn.MultiheadAttention, x: Tensor, mode: str) -> Tensor:
    """The last block's attention in one of the training-free modes. ``x``: ``(N, L, D)``
    (already layer-normed) -> ``(N, L, D)`` after the output projection."""
    n, length, dim = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if mode == "maskclip":
        out = v
    else:
        q, k, v = (t.reshape(n, length, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        scale = (dim // heads) ** -0.5
        if mode == "clearclip":
            weights = torch.softmax(q @ q.transpose(-2, -1) * scale, dim=-1)
        elif mode == "sclip":
            weights = torch.softmax(q @ q.transpose(-2, -1) * scale, dim=-1) + torch.softmax(
                k @ k.transpose(-2, -1) * scale, dim=-1
            )
        else:
            raise ValueError(f"dense mode must be one of {DENSE_MODES}, got {mode!r}")
        out = (weights @ v).transpose(1, 2).reshape(n, length, dim)
    return attn.out_proj(out)


class CLIPImageEncoder(nn.Module):
    """An open_clip ViT image tower returning feature maps, the last one in CLIP's joint space.

    Args:
        name, pretrained, cache_dir, model_kwargs, quick_gelu: the open_clip model, as
            :func:`~segkit.models.openvocab.clip.create_clip`.
        dense: how the last block treats patch tokens: ``"clearclip"``, ``"sclip"``,
            ``"maskclip"`` or ``"none"`` (see the module docstring).
        out_indices: transformer blocks (0-based) whose patch tokens are also returned, before the
            dense embedding; e.g. CAT-Seg's guidance features.
        finetune: ``"none"`` (frozen), ``"attention"`` or ``"all"``.
        residual, ffn: keep the last block's residual connection / FFN (``None``: the mode's).

    ``forward(images (N, 3, H, W), normalised)`` -> ``[block maps (N, width, H/p, W/p) ...,
    dense embedding (N, embed_dim, H/p, W/p)]``; any ``H, W`` divisible by the patch size ``p``
    (the position embedding is resized bicubically).
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        dense: str = "clearclip",
        out_indices: Sequence[int] = (),
        cache_dir: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        quick_gelu: bool | None = None,
        finetune: str = "none",
        residual: bool | None = None,
        ffn: bool | None = None,
    ) -> None:
        super().__init__()
        from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

        if dense not in DENSE_MODES:
            raise ValueError(f"dense must be one of {DENSE_MODES}, got {dense!r}")
        visual = create_clip(name, pretrained, cache_dir, model_kwargs, quick_gelu).visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
            raise ValueError(
                f"{name}: dense CLIP features need an open_clip VisionTransformer image tower "
                f"without attentional pooling, got {type(visual).__name__}"
            )
        blocks = visual.transformer.resblocks
        if dense != "none" and not isinstance(blocks[-1], ResidualAttentionBlock):
            raise ValueError(f"{name}: dense={dense!r} needs standard attention blocks")
        depth = len(blocks)
        bad = [i for i in out_indices if not 0 <= i < depth - 1]
        if bad:
            raise ValueError(
                f"out_indices {bad} outside 0..{depth - 2} ({name} has {depth} blocks)"
            )
        self.visual = visual
        self.dense = dense
        default_residual, default_ffn = _LAST_BLOCK.get(dense, (True, True))
        self.residual = default_residual if residual is None else residual
        self.ffn = default_ffn if ffn is None else ffn
        self.out_indices = list(out_indices)
        width = visual.conv1.out_channels
        patch = visual.patch_size[0]
        self.patch_size = patch
        self.channels = [width] * len(self.out_indices) + [visual.output_dim]
        self.strides = [patch] * len(self.channels)
        self.embed_dim = visual.output_dim
        _set_trainable(self.visual, finetune)

    def forward(self, x: Tensor) -> list[Tensor]:
        v = self.visual
        x, grid = clip_tokens(v, x)
        maps = []
        blocks = v.transformer.resblocks
        for i, block in enumerate(blocks[:-1]):
            x = block(x)
            if i in self.out_indices:
                maps.append(self._to_map(x[:, 1:], grid))
        last = blocks[-1]
        if self.dense == "none":
            x = last(x)
        else:
            attended = last.ls_1(dense_attention(last.attn, last.ln_1(x), self.dense))
            x = x + attended if self.residual else attended
            if self.ffn:
                x = x + last.ls_2(last.mlp(last.ln_2(x)))
        tokens = v.ln_post(x[:, 1:]) @ v.proj
        maps.append(self._to_map(tokens, grid))
        return maps

    @staticmethod
    def _to_map(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
