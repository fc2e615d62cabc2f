"""Sampling feature maps at continuous points (PointRend), in plain PyTorch.

The same operation as mmcv's ``point_sample`` (which is ``F.grid_sample`` on ``[0, 1]``
coordinates): no compiled extension, any device.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["point_sample"]


def point_sample(
    input: Tensor, points: Tensor, align_corners: bool = False, mode: str = "bilinear"
) -> Tensor:
    """Values of ``input`` at ``points``.

    Args:
        input: ``(N, C, H, W)`` maps.
        points: ``(N, P, 2)`` (or ``(N, P, Q, 2)``) ``(x, y)`` coordinates in ``[0, 1]``, where
            ``0`` and ``1`` are the outer edges of the map (``align_corners=False``) or the centres
            of its corner pixels (``True``).
        align_corners: as in ``F.grid_sample``.
        mode: ``"bilinear"`` or ``"nearest"`` (for label maps).

    Returns:
        ``(N, C, P)`` (or ``(N, C, P, Q)``); points outside the map read zeros.
    """
    grid = 2.0 * points - 1.0
    squeeze = grid.dim() == 3
    if squeeze:
        grid = grid.unsqueeze(2)
    out = F.grid_sample(input, grid, mode=mode, align_corners=align_corners)
    return out.squeeze(3) if squeeze else out
