"""State-dict transforms for converting transformers' MaskFormer / Mask2Former checkpoints."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["merge_qkv_projections"]


def merge_qkv_projections(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Concatenate separate ``<prefix>.{q,k,v}_proj.{weight,bias}`` into ``nn.MultiheadAttention``'s
    ``<prefix>.in_proj_{weight,bias}`` (rows ``[q; k; v]``); other keys pass through."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for kind in ("weight", "bias"):
            if key.endswith(f".q_proj.{kind}"):
                prefix = key[: -len(f".q_proj.{kind}")]
                parts = [state[f"{prefix}.{p}_proj.{kind}"] for p in ("q", "k", "v")]
                out[f"{prefix}.in_proj_{kind}"] = torch.cat(parts, dim=0)
                break
            if key.endswith((f".k_proj.{kind}", f".v_proj.{kind}")):
                break
        else:
            out[key] = value
    return out
