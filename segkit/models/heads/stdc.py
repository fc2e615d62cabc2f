"""STDC's detail head: boundary supervision of the 1/8 backbone stage (training only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["STDCDetailHead", "detail_targets"]


def detail_targets(label: Tensor, threshold: float = 0.1) -> Tensor:
    """STDC's binary detail (boundary) map of a label map, as MMSegmentation's ``STDCHead``.

    A 3x3 Laplacian of the label map (ids as values, the ignore index included) at strides 1, 2
    and 4; each is clamped at 0, upsampled (nearest) to full size and thresholded, and the three
    are fused with weights (0.6, 0.3, 0.1) and thresholded again.

    ``label (N, H, W)`` int64 -> ``(N, H, W)`` int64 in {0, 1}.
    """
    x = label.unsqueeze(1).float()
    kernel = x.new_tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])
    kernel = kernel.view(1, 1, 3, 3)
    pyramid = []
    for stride in (1, 2, 4):
        edges = F.conv2d(x, kernel, stride=stride, padding=1).clamp(min=0)
        if stride > 1:
            edges = F.interpolate(edges, size=x.shape[2:], mode="nearest")
        pyramid.append((edges > threshold).float())
    fusion = x.new_tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1)
    fused = F.conv2d(torch.cat(pyramid, dim=1), fusion)
    return (fused > threshold).squeeze(1).long()


class STDCDetailHead(nn.Module):
    """Dropout + 1x1 classifier predicting the detail map (``num_classes`` = 2 channels, as
    MMSegmentation's ``STDCHead``), trained on :func:`detail_targets` of the label map.

    Used as the head of an :class:`~segkit.models.AuxiliaryHead` (FCN decoder on the 1/8
    stage), so it runs in training only.

    Args:
        in_channels: width of the decoded map.
        num_classes: output channels (2: non-detail / detail).
        dropout: dropout probability before the classifier.
        boundary_threshold: threshold of the Laplacian responses.
        losses: losses on the logits (upsampled to the label size) against the detail map
            (MMSeg: sigmoid cross-entropy + Dice, weight 1 each).
        align_corners: of that upsampling (MMSeg's STDC configs: True).
        target_key: the batch entry holding the label map.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int = 2,
        dropout: float = 0.1,
        boundary_threshold: float = 0.1,
        losses: Sequence[nn.Module] = (),
        align_corners: bool = True,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.boundary_threshold = boundary_threshold
        self.align_corners = align_corners
        self.target_key = target_key
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)
        self.losses = nn.ModuleList(losses)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, h, w)`` -> detail logits ``(N, num_classes, h, w)``."""
        return self.conv_seg(self.dropout(x))

    def loss(self, logits: Tensor, batch: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
        """Losses of the logits upsampled to the label size against its detail map."""
        label = batch[self.target_key]
        target = detail_targets(label, self.boundary_threshold)
        logits = F.interpolate(
            logits, size=label.shape[1:], mode="bilinear", align_corners=self.align_corners
        )
        return {f"{prefix}{loss.name}": loss(logits, target) for loss in self.losses}

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Detail scores ``(C, H, W)`` -> ``(H, W)`` labels."""
        return scores.argmax(dim=0)
