"""Online hard example mining (OHEM) cross-entropy, in MMSegmentation's two forms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OhemCrossEntropyLoss", "OhemPixelCrossEntropyLoss"]


def _target_probs(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Softmax probability of each pixel's target class ``(N, H, W)`` and the valid mask."""
    valid = target != ignore_index
    safe = torch.where(valid, target, 0)
    prob = logits.float().softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    return prob, valid


class OhemPixelCrossEntropyLoss(nn.Module):
    """Cross-entropy on the hard pixels only: MMSegmentation's ``CrossEntropyLoss`` with an
    ``OHEMPixelSampler(thresh, min_kept)`` (STDC's heads).

    A valid pixel is kept when its target-class probability is below
    ``max(thresh, p_k)``, ``p_k`` the ``k = min_kept x batch``-th smallest such probability, so
    at least ``k`` pixels are kept. The kept pixels' losses are summed and divided by the number
    of pixels (MMSegmentation's default ``avg_non_ignore=False``), or by the number of valid
    pixels with ``avg_non_ignore=True``.

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64 -> scalar, times ``loss_weight``.
    """

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 10000,
        ignore_index: int = 255,
        loss_weight: float = 1.0,
        avg_non_ignore: bool = False,
        name: str = "loss_ce",
    ) -> None:
        super().__init__()
        self.thresh = thresh
        self.min_kept = min_kept
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.avg_non_ignore = avg_non_ignore
        self.name = name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            prob, valid = _target_probs(logits, target, self.ignore_index)
            valid_prob = prob[valid]
            if valid_prob.numel() > 0:
                k = min(self.min_kept * target.shape[0], valid_prob.numel() - 1)
                threshold = valid_prob.kthvalue(k + 1).values.clamp(min=self.thresh)
            else:
                threshold = prob.new_tensor(0.0)
            kept = valid & (prob < threshold)
        losses = F.cross_entropy(
            logits.float(), target, ignore_index=self.ignore_index, reduction="none"
        )
        denom = valid.sum().clamp(min=1) if self.avg_non_ignore else target.numel()
        return self.loss_weight * (losses * kept).sum() / denom


class OhemCrossEntropyLoss(nn.Module):
    """MMSegmentation's ``OhemCrossEntropy`` (DDRNet, PIDNet): the mean class-weighted
    cross-entropy of the valid pixels whose target-class probability is below
    ``max(thres, p_k)``, ``p_k`` the ``min_kept``-th smallest such probability (over the whole
    batch, not per image).

    ``logits (N, C, H, W)``, ``target (N, H, W)`` int64 -> scalar, times ``loss_weight``.
    """

    def __init__(
        self,
        thres: float = 0.7,
        min_kept: int = 100000,
        ignore_index: int = 255,
        class_weight: Sequence[float] | None = None,
        loss_weight: float = 1.0,
        name: str = "loss_ohem",
    ) -> None:
        super().__init__()
        self.thres = thres
        self.min_kept = max(1, min_kept)
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.name = name
        weight = torch.tensor(list(class_weight), dtype=torch.float32) if class_weight else None
        self.register_buffer("class_weight", weight, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        losses = F.cross_entropy(
            logits.float(),
            target,
            weight=self.class_weight,
            ignore_index=self.ignore_index,
            reduction="none",
        )
        with torch.no_grad():
            prob, valid = _target_probs(logits, target, self.ignore_index)
            valid_prob = prob[valid]
            if valid_prob.numel() == 0:
                return logits.sum() * 0.0
            k = min(self.min_kept, valid_prob.numel() - 1)
            threshold = valid_prob.kthvalue(k + 1).values.clamp(min=self.thres)
            kept = valid & (prob < threshold)
        # mean over the kept pixels (NaN-free: 0 when none is kept, as an empty mean would not be)
        return self.loss_weight * (losses * kept).sum() / kept.sum().clamp(min=1)
