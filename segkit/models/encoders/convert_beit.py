"""Checkpoint-conversion steps for BEiT-style ViTs (MMSegmentation's MAE backbone)."""

from __future__ import annotations

import re

from torch import Tensor

__all__ = ["split_qkv_bias"]


def split_qkv_bias(
    state: dict[str, Tensor], pattern: str = r"\.attn\.qkv\.bias$"
) -> dict[str, Tensor]:
    """Packed ``qkv.bias`` ``(3C,)`` -> ``q_bias`` and ``v_bias`` ``(C,)`` (timm's BEiT blocks).

    The key bias is dropped: it adds ``q . b_k`` to every logit of a query's row, which softmax
    cancels, so the outputs are unchanged (and in training it never receives a gradient).
    """
    out: dict[str, Tensor] = {}
    regex = re.compile(pattern)
    for key, value in state.items():
        if regex.search(key):
            q, _, v = value.chunk(3)
            stem = regex.sub(".attn.", key)
            out[f"{stem}q_bias"], out[f"{stem}v_bias"] = q, v
        else:
            out[key] = value
    return out
