"""Pixel-wise cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossEntropyLoss(nn.Module):
    """Cross-entropy over pixels with an ignore index and optional class weights.

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64. The mean runs over the pixels that are not
    ignored (MMSegmentation's ``avg_non_ignore=True``), so the loss scale does not depend on how
    much of a crop is padding. The result is multiplied by ``loss_weight``.
    """

    def __init__(
        self,
        ignore_index: int = 255,
        class_weight: Sequence[float] | None = None,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
        name: str = "loss_ce",
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.label_smoothing = label_smoothing
        self.name = name
        weight = torch.tensor(list(class_weight), dtype=torch.float32) if class_weight else None
        self.register_buffer("class_weight", weight, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = F.cross_entropy(
            logits.float(),
            target,
            weight=self.class_weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction="sum",
        )
        # Normalise by hand rather than with reduction="mean": a crop that is all ignore gives 0
        # (not NaN) and no device-to-host sync is needed to detect it.
        valid = target != self.ignore_index
        if self.class_weight is None:
            denom = valid.sum()
        else:
            denom = (self.class_weight[torch.where(valid, target, 0)] * valid).sum()
        return self.loss_weight * total / denom.clamp(min=1)
