"""Depth heads: a decoded map -> depth in metres (or relative depth), with their losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DepthHead", "depth_losses", "scale_depth"]


def depth_losses(
    pred: Tensor, target: Tensor, losses: Sequence[nn.Module], prefix: str = ""
) -> dict[str, Tensor]:
    """Resize ``pred (N, 1, h, w)`` to ``target (N, H, W)`` (bilinear; depth is continuous) and
    apply each loss on the valid pixels (``target > 0``).

    Returns ``{prefix + loss.name: value}``. Each loss takes ``(pred (N, H, W), target (N, H, W),
    valid (N, H, W) bool)``.
    """
    if pred.shape[2:] != target.shape[1:]:
        pred = F.interpolate(pred, size=target.shape[1:], mode="bilinear", align_corners=False)
    pred = pred[:, 0].float()
    target = target.float()
    valid = target > 0
    return {f"{prefix}{loss.name}": loss(pred, target, valid) for loss in losses}


def scale_depth(x: Tensor, activation: str, min_depth: float, max_depth: float | None) -> Tensor:
    """Raw head output -> depth: ``sigmoid``: ``min + (max - min) * sigmoid(x)`` (bounded, needs
    ``max_depth``); ``relu``: ``min + relu(x)``; ``exp``: ``min + exp(x)``; ``none``: ``x``."""
    if activation == "sigmoid":
        if max_depth is None:
            raise ValueError("activation='sigmoid' needs max_depth")
        return min_depth + (max_depth - min_depth) * torch.sigmoid(x)
    if activation == "relu":
        return min_depth + F.relu(x)
    if activation == "exp":
        return min_depth + torch.exp(x)
    if activation == "none":
        return x
    raise ValueError(f"activation must be sigmoid, relu, exp or none, got {activation!r}")


class DepthHead(nn.Module):
    """Regression head: a 3x3 conv, ReLU and a 1x1 conv to one channel, then the activation that
    maps it to metres (MMSegmentation's VPD head ends the same way: ``sigmoid * max_depth`` or
    ``relu``).

    Args:
        in_channels: channels of the decoded map (from the segmentor).
        min_depth, max_depth: the output range in metres (NYU: 1e-3 to 10; KITTI: 1e-3 to 80).
        activation: ``"sigmoid"`` (bounded by ``max_depth``), ``"relu"`` or ``"exp"``.
        channels: width of the hidden 3x3 conv (0: a single 1x1 conv).
        losses: depth losses (``segkit.models.losses.depth``), summed; each carries its weight.
        target_key: the batch entry holding the ground truth ``(N, H, W)`` metres, 0 = invalid.

    ``forward(x (N, C, h, w)) -> (N, 1, h, w)`` depth in metres. ``postprocess`` turns one
    sample's ``(1, H, W)`` into ``(H, W)`` metres.
    """

    num_classes = 1  # one output channel (code that sizes outputs by heads reads this)

    def __init__(
        self,
        in_channels: int,
        min_depth: float = 1e-3,
        max_depth: float | None = 10.0,
        activation: str = "sigmoid",
        channels: int = 0,
        losses: list[nn.Module] | None = None,
        target_key: str = "depth",
    ) -> None:
        super().__init__()
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.activation = activation
        scale_depth(torch.zeros(1), activation, min_depth, max_depth)  # validate early
        if channels:
            self.conv = nn.Sequential(
                nn.Conv2d(in_channels, channels, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, 1, 1),
            )
        else:
            self.conv = nn.Conv2d(in_channels, 1, 1)
        if losses is None:
            from segkit.models.losses.depth import SILogLoss

            losses = [SILogLoss()]
        self.losses = nn.ModuleList(losses)
        self.target_key = target_key

    def forward(self, x: Tensor) -> Tensor:
        return scale_depth(self.conv(x), self.activation, self.min_depth, self.max_depth)

    def loss(self, pred: Tensor, batch: dict, prefix: str = "") -> dict[str, Tensor]:
        return depth_losses(pred, batch[self.target_key], self.losses, prefix)

    @staticmethod
    def postprocess(output: Tensor) -> Tensor:
        """``(1, H, W)`` -> ``(H, W)`` float depth."""
        return output[0].float()
