"""Adaptive average pooling that exports with dynamic input sizes.

ONNX has no adaptive pooling to more than one bin: the TorchScript exporter refuses it for
dynamic sizes, and the dynamo exporter's decomposition fixes the bins of the example size (its
graph is silently wrong at other sizes, measured on UPerNet). While a model is being exported,
the same bins are computed as two averaging matrices built from the input's shape; in eager mode
(training, evaluation) PyTorch's own kernel runs, so results there are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdaptiveAvgPool2d", "adaptive_avg_pool2d"]


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """``F.adaptive_avg_pool2d``: ``(N, C, H, W)`` -> ``(N, C, oh, ow)``; bin ``i`` of a
    dimension of size ``S`` averages ``[floor(i S / o), ceil((i + 1) S / o))``.

    Under ``torch.jit`` tracing or ``torch.export`` the bins are ``P_h x P_w^T`` with averaging
    matrices ``P`` (``(o, S)``) built from the input's shape: the same values up to float
    rounding (about 1e-7 relative), for every input size."""
    if not (torch.jit.is_tracing() or torch.compiler.is_exporting()):
        return F.adaptive_avg_pool2d(x, output_size)
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    return torch.einsum("ih,nchw,jw->ncij", _bins(x, 2, oh), x, _bins(x, 3, ow))


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` computed by :func:`adaptive_avg_pool2d` (exportable)."""

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)


def _bins(x: Tensor, dim: int, out: int) -> Tensor:
    """The ``(out, size)`` averaging matrix of adaptive pooling along ``x``'s dimension ``dim``."""
    size = x.shape[dim]
    index = torch.arange(size, device=x.device)
    i = torch.arange(out, device=x.device)
    start = torch.div(i * size, out, rounding_mode="floor")
    end = torch.div((i + 1) * size + out - 1, out, rounding_mode="floor")
    mask = ((index[None] >= start[:, None]) & (index[None] < end[:, None])).to(x.dtype)
    return mask / mask.sum(1, keepdim=True)
