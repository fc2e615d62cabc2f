"""Checkpoint-conversion steps for Swin Transformers (used by ``conf/convert`` specs).

MMSegmentation's ``PatchMerging`` gathers each 2x2 neighbourhood with ``nn.Unfold``, which orders
the ``4 * C`` merged channels as ``(c, row, col)``; timm (and the original Swin, and transformers)
concatenates the four pixels ``(row, col) = (0, 0), (1, 0), (0, 1), (1, 1)``, i.e. ``(col, row, c)``.
The merged LayerNorm and the reduction's input columns are permuted accordingly.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = ["mmseg_patch_merging_to_timm", "unfold_to_concat_order"]


def unfold_to_concat_order(channels: int) -> Tensor:
    """Index ``perm`` of length ``4 * channels`` with ``timm[..., t] = mmseg[..., perm[t]]``."""
    col, row, c = torch.meshgrid(
        torch.arange(2), torch.arange(2), torch.arange(channels), indexing="ij"
    )
    return (c * 4 + row * 2 + col).flatten()


def mmseg_patch_merging_to_timm(
    state: dict[str, Tensor],
    pattern: str = r"downsample\.(norm\.weight|norm\.bias|reduction\.weight)$",
) -> dict[str, Tensor]:
    """Reorder the merged channels of every patch-merging tensor whose key matches ``pattern``
    (norm weight/bias: ``(4C,)``; reduction weight: ``(C_out, 4C)``) from unfold to concat order."""
    out = dict(state)
    regex = re.compile(pattern)
    for key, value in state.items():
        if regex.search(key):
            perm = unfold_to_concat_order(value.shape[-1] // 4)
            out[key] = value[..., perm].contiguous()
    return out
