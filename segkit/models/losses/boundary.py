"""PIDNet's class-balanced boundary loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BoundaryLoss"]


class BoundaryLoss(nn.Module):
    """Binary cross-entropy of boundary logits, each class weighted by the other's frequency
    (edge pixels by the non-edge fraction and vice versa), averaged over all pixels of the
    batch: MMSegmentation's ``BoundaryLoss``.

    ``logits (N, 1, H, W)``, ``target (N, H, W)`` with 1 on edges, 0 elsewhere (other values
    get weight 0) -> scalar, times ``loss_weight``.
    """

    def __init__(self, loss_weight: float = 1.0, name: str = "loss_boundary") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float().reshape(-1)
        target = target.reshape(-1).float()
        pos, neg = target == 1, target == 0
        num_pos, num_neg = pos.sum(), neg.sum()
        total = (num_pos + num_neg).clamp(min=1)
        weight = pos * (num_neg / total) + neg * (num_pos / total)
        loss = F.binary_cross_entropy_with_logits(logits, target, weight, reduction="mean")
        return self.loss_weight * loss
