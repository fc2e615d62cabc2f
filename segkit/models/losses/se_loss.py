"""EncNet's semantic encoding loss: which classes occur in the image, as multi-label BCE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.segmentor import AuxiliaryLoss


def class_presence(target: Tensor, num_classes: int) -> Tensor:
    """Label maps ``(N, H, W)`` -> ``(N, num_classes)`` float, 1 where the class occurs; labels
    outside ``[0, num_classes)`` (the ignore index) are not counted."""
    flat = target.flatten(1)
    valid = (flat >= 0) & (flat < num_classes)
    hits = torch.zeros(flat.shape[0], num_classes + 1, device=target.device)
    hits.scatter_(1, torch.where(valid, flat, num_classes), 1.0)
    return hits[:, :num_classes]


class SELoss(nn.Module):
    """Binary cross-entropy between image-level class logits ``(N, C)`` and the classes present in
    ``target (N, H, W)``, averaged over images and classes, times ``loss_weight``
    (MMSegmentation's ``CrossEntropyLoss(use_sigmoid=True)`` on EncHead's one-hot labels)."""

    def __init__(self, loss_weight: float = 0.2, name: str = "loss_se") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        present = class_presence(target, logits.shape[1])
        return self.loss_weight * F.binary_cross_entropy_with_logits(logits.float(), present)


class SEAuxiliaryLoss(AuxiliaryLoss):
    """An auxiliary entry for image-level logits a decoder returns (EncNet's ``aux["se"]``): its
    losses see the ``(N, C)`` logits and the full label map, with no resizing."""

    def loss(self, logits: Tensor, batch: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
        target = batch[self.target_key]
        return {f"{prefix}{loss.name}": loss(logits, target) for loss in self.losses}
