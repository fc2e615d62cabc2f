"""Checkpoint-conversion steps between packed and separate q/k/v attention projections
(MMSegmentation's MAE, transformers' Swin and BEiT -> timm's ``qkv`` / ``q_bias`` / ``v_bias``)."""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = ["merge_qkv", "split_qkv_bias"]


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


def merge_qkv(state: dict[str, Tensor], separate_bias: bool = False) -> dict[str, Tensor]:
    """Separate ``<p>.query/key/value.{weight,bias}`` -> timm's packed ``<p>.qkv.weight``
    ``(3C, C)`` (rows q, k, v) and either ``<p>.qkv.bias`` ``(3C,)`` or, with ``separate_bias``
    (BEiT: no key bias), ``<p>.q_bias`` / ``<p>.v_bias``; a key bias is then dropped (softmax
    cancels it)."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".query.weight")]:
        base = key[: -len(".query.weight")]
        parts = [out.pop(f"{base}.{n}.weight") for n in ("query", "key", "value")]
        out[f"{base}.qkv.weight"] = torch.cat(parts)
        biases = {n: out.pop(f"{base}.{n}.bias", None) for n in ("query", "key", "value")}
        if separate_bias:
            if biases["query"] is not None:
                out[f"{base}.q_bias"], out[f"{base}.v_bias"] = biases["query"], biases["value"]
        elif biases["query"] is not None:
            out[f"{base}.qkv.bias"] = torch.cat([biases[n] for n in ("query", "key", "value")])
    return out
