"""Optimizer parameter groups from rules: learning-rate and weight-decay multipliers."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["describe", "param_groups"]

_NORMS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d)


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    lr_mult: Mapping[str, float] | None = None,
    decay_mult: Mapping[str, float] | None = None,
    norm_decay_mult: float = 1.0,
    bias_decay_mult: float = 1.0,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into groups by rule (MMSegmentation's
    ``paramwise_cfg`` as data).

    Args:
        lr, weight_decay: the base values.
        lr_mult: ``{glob pattern on the parameter name: multiplier}``, e.g. ``{"decoder.*": 10}``;
            the first matching pattern wins.
        decay_mult: the same for weight decay, e.g. ``{"*pos_embed*": 0}``.
        norm_decay_mult: weight-decay multiplier for every normalisation layer's parameters.
        bias_decay_mult: weight-decay multiplier for biases.

    Returns one group per distinct ``(lr, weight_decay)`` pair, each with a ``name``.
    """
    norm_params = {
        id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)
    }

    def first_match(name: str, rules: Mapping[str, float] | None) -> float | None:
        for pattern, mult in (rules or {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                return float(mult)
        return None

    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lm = first_match(name, lr_mult)
        dm = first_match(name, decay_mult)
        if dm is None:
            if id(p) in norm_params:
                dm = norm_decay_mult
            elif name.endswith(".bias"):
                dm = bias_decay_mult
            else:
                dm = 1.0
        key = (lr * (1.0 if lm is None else lm), weight_decay * dm)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": key[0],
                "weight_decay": key[1],
                "name": f"lr={key[0]:g},wd={key[1]:g}",
            }
        groups[key]["params"].append(p)
    return list(groups.values())


def describe(groups: Sequence[Mapping[str, Any]]) -> str:
    """One line per group: name and parameter count."""
    return "\n".join(f"{g['name']}: {sum(p.numel() for p in g['params']):,} params" for g in groups)
