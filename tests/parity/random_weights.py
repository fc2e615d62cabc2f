"""Deterministic random weights for parity fixtures, shared by the fixture generator (run in
the MMSegmentation environment) and the parity tests (run in segkit's).

A fixture stores only the names, shapes and seed of the floating-point tensors; both sides
redraw them here, in state-dict order, so fixtures stay small (kilobytes, not megabytes) while
every weight is still exercised. Plain torch only: this file is imported by path on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor


def draw(name: str, shape: tuple[int, ...], g: torch.Generator) -> Tensor:
    """One tensor with a scale that keeps activations O(1): BN statistics near identity, norm
    scales in [0.5, 1.5), weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01)."""
    if name.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    if name.endswith("running_mean"):
        return torch.randn(shape, generator=g) * 0.1
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=g) / math.sqrt(max(fan_in, 1))
    if name.endswith("weight"):
        return torch.rand(shape, generator=g) + 0.5
    return torch.randn(shape, generator=g) * 0.1


def describe(state: Mapping[str, Tensor], seed: int) -> dict:
    """The compact form of ``state`` after :func:`randomize`: float tensors by name and shape,
    other tensors (integer buffers, counters) as they are."""
    return {
        "seed": seed,
        "float": [(k, tuple(v.shape)) for k, v in state.items() if v.is_floating_point()],
        "other": {k: v.clone() for k, v in state.items() if not v.is_floating_point()},
    }


def rebuild(compact: Mapping) -> dict[str, Tensor]:
    """The state dict that :func:`describe` summarised (same order, same values)."""
    g = torch.Generator().manual_seed(compact["seed"])
    state = {name: draw(name, tuple(shape), g) for name, shape in compact["float"]}
    state.update(compact["other"])
    return state


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> dict:
    """Redraw every floating-point tensor of ``model`` in place; returns :func:`describe`."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for name, tensor in state.items():
        if tensor.is_floating_point():
            tensor.copy_(draw(name, tuple(tensor.shape), g))
    return describe(state, seed)
