"""Affine-invariant disparity loss (MiDaS, Ranftl et al., TPAMI 2020; Depth Anything, 2024)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AffineInvariantLoss"]


def _normalise(x: Tensor, eps: float) -> Tensor:
    """``(x - median(x)) / mean|x - median(x)|`` over the valid values ``x (P,)``."""
    shifted = x - x.median()
    return shifted / shifted.abs().mean().clamp(min=eps)


class AffineInvariantLoss(nn.Module):
    """Mean absolute difference of scale- and shift-normalised disparities, per image.

    For relative-depth heads (Depth Anything's released models) that predict disparity up to an
    unknown scale and shift. The target depth (metres) becomes disparity ``1 / depth``; the
    prediction and that disparity are each normalised on the image's valid pixels to
    ``(d - t(d)) / s(d)``, ``t`` the median and ``s`` the mean absolute deviation from it
    (Depth Anything, eq. 1, after MiDaS), and the loss is ``mean |d_pred - d_target|`` over those
    pixels, averaged over the images with at least ``min_valid`` valid pixels.

    ``forward(pred (N, H, W) disparity, target (N, H, W) metres, valid (N, H, W) bool) ->
    scalar``, multiplied by ``loss_weight``; 0 (with a gradient) when no image qualifies.
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        min_valid: int = 2,
        eps: float = 1e-6,
        name: str = "loss_affine_invariant",
    ) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.min_valid = min_valid
        self.eps = eps
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        per_image = []
        for p, t, v in zip(pred.float(), target.float(), valid & (target > 0)):
            if int(v.sum()) < self.min_valid:
                continue
            d_pred = _normalise(p[v], self.eps)
            d_true = _normalise(1.0 / t[v], self.eps)
            per_image.append((d_pred - d_true).abs().mean())
        if not per_image:
            return pred.sum() * 0.0
        return self.loss_weight * torch.stack(per_image).mean()
