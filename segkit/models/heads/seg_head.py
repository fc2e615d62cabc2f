"""Segmentation head: decoded map -> class logits, with its loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.losses import CrossEntropyLoss


def segmentation_losses(
    logits: Tensor, target: Tensor, losses: Sequence[nn.Module], prefix: str = ""
) -> dict[str, Tensor]:
    """Upsample ``logits (N, C, h, w)`` to ``target (N, H, W)`` (bilinear) and apply each loss.

    Returns ``{prefix + loss.name: value}``.
    """
    if logits.shape[2:] != target.shape[1:]:
        logits = F.interpolate(logits, size=target.shape[1:], mode="bilinear", align_corners=False)
    return {f"{prefix}{loss.name}": loss(logits, target) for loss in losses}


class SegHead(nn.Module):
    """Dropout + 1x1 conv classifier on a decoder's map; owns its loss.

    Args:
        in_channels: channels of the decoded map (given by the segmentor from the decoder).
        num_classes: number of classes (from the dataset config).
        dropout: dropout probability before the classifier (MMSegmentation: 0.1).
        losses: loss modules applied to the logits upsampled to the label size; their values are
            summed (each already carries its own ``loss_weight``).
        target_key: the batch entry holding the label map.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.1,
        losses: list[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.target_key = target_key
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)
        self.losses = nn.ModuleList(losses if losses is not None else [CrossEntropyLoss()])
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, h, w)`` -> logits ``(N, num_classes, h, w)``."""
        return self.conv_seg(self.dropout(x))

    def loss(self, logits: Tensor, batch: dict, prefix: str = "") -> dict[str, Tensor]:
        """Upsample ``logits`` to the label size (bilinear) and apply every loss.

        ``batch[target_key]``: ``(N, H, W)`` int64 with the ignore index where there is no label.
        Returns ``{prefix + loss.name: value}``.
        """
        return segmentation_losses(logits, batch[self.target_key], self.losses, prefix)

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)
