"""Per-class sigmoid (binary) cross-entropy on one-hot labels: MMSegmentation's
``CrossEntropyLoss(use_sigmoid=True)`` for multi-class maps (Fast-SCNN's loss)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BinaryCrossEntropyLoss(nn.Module):
    """Each of the ``C`` logits of a pixel is an independent sigmoid classifier against the
    one-hot label.

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64. Ignored pixels contribute nothing; the
    mean runs over the ``C`` x (non-ignored pixels) terms (MMSegmentation's
    ``avg_non_ignore=True``). The result is multiplied by ``loss_weight``.
    """

    def __init__(
        self, ignore_index: int = 255, loss_weight: float = 1.0, name: str = "loss_bce"
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid = target != self.ignore_index
        one_hot = F.one_hot(target.where(valid, 0), logits.shape[1]).permute(0, 3, 1, 2)
        terms = F.binary_cross_entropy_with_logits(
            logits.float(), one_hot.float(), reduction="none"
        )
        total = (terms * valid.unsqueeze(1)).sum()
        return self.loss_weight * total / (valid.sum() * logits.shape[1]).clamp(min=1)
