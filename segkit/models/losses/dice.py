"""Dice loss and binary (sigmoid) cross-entropy on one-hot targets, as MMSegmentation's."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BinaryCrossEntropyLoss", "DiceLoss"]


def _one_hot(target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    """``(N, H, W)`` labels -> ``(N, C, H, W)`` float one-hot (all zero where ignored) and the
    ``(N, 1, H, W)`` valid mask."""
    valid = (target >= 0) & (target != ignore_index)
    one_hot = F.one_hot(
        target.clamp(0, num_classes) * valid + num_classes * ~valid, num_classes + 1
    )
    return one_hot[..., :num_classes].permute(0, 3, 1, 2).float(), valid.unsqueeze(1)


class DiceLoss(nn.Module):
    """MMSegmentation's ``DiceLoss`` (v1.x, non-naive): per image,
    ``1 - 2 sum(p t) / (sum(p^2) + sum(t^2) + 2 eps)`` over all classes and pixels, averaged over
    the batch; ``p`` = sigmoid (``use_sigmoid``) or softmax of the logits, ``t`` the one-hot
    target (zero at ignored pixels).

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64 -> scalar, times ``loss_weight``.
    """

    def __init__(
        self,
        use_sigmoid: bool = True,
        eps: float = 1e-3,
        ignore_index: int = 255,
        loss_weight: float = 1.0,
        name: str = "loss_dice",
    ) -> None:
        super().__init__()
        self.use_sigmoid = use_sigmoid
        self.eps = eps
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        if self.use_sigmoid:
            pred = logits.sigmoid()
        elif logits.shape[1] != 1:
            pred = logits.softmax(dim=1)
        else:
            pred = logits
        one_hot, _ = _one_hot(target, logits.shape[1], self.ignore_index)
        pred, one_hot = pred.flatten(1), one_hot.flatten(1)
        inter = (pred * one_hot).sum(1)
        denom = (pred * pred).sum(1) + (one_hot * one_hot).sum(1) + 2 * self.eps
        return self.loss_weight * (1 - 2 * inter / denom).mean()


class BinaryCrossEntropyLoss(nn.Module):
    """Sigmoid cross-entropy of every class channel against the one-hot target (MMSegmentation's
    ``CrossEntropyLoss(use_sigmoid=True)``): averaged over all ``N x C x H x W`` elements, the
    ignored pixels counting as zero loss (``avg_non_ignore=False``).

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64 -> scalar, times ``loss_weight``.
    """

    def __init__(self, ignore_index: int = 255, loss_weight: float = 1.0, name: str = "loss_bce"):
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        one_hot, valid = _one_hot(target, logits.shape[1], self.ignore_index)
        loss = F.binary_cross_entropy_with_logits(logits.float(), one_hot, reduction="none")
        return self.loss_weight * (loss * valid).mean()
