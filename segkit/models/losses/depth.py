"""Depth losses: ``forward(pred (N, H, W), target (N, H, W), valid (N, H, W) bool) -> scalar``.

Depth is in metres. Every loss reads only the pixels where ``valid`` is true (values elsewhere
change nothing), is already multiplied by its ``loss_weight`` and carries a
``name`` (the key it is logged under). A batch without a valid pixel gives a zero that stays
connected to the graph. :class:`BinsChamferLoss` (AdaBins) compares bin centres ``(N, B)``
instead of a depth map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "BerHuLoss",
    "BinsChamferLoss",
    "GradientMatchingLoss",
    "L1DepthLoss",
    "SILogLoss",
    "ScaleShiftInvariantLoss",
    "align_scale_shift",
]


def _safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x > 0``, 0 elsewhere, with a zero (not NaN) gradient at ``x <= 0``."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), 0.0)


def _masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``x`` over the valid pixels of the whole batch (0 if there are none)."""
    total = torch.where(valid, x, 0.0).sum()
    return total / valid.sum().clamp(min=1)


def _to_disparity(pred: Tensor, target: Tensor, valid: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Depth -> inverse depth (1/m): ``1 / max(pred, eps)``; ``1 / target`` where valid."""
    pred = 1.0 / pred.clamp(min=eps)
    target = torch.where(valid, 1.0 / torch.where(valid, target, 1.0), 0.0)
    return pred, target


def align_scale_shift(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Per image, the least-squares fit ``s * pred + t`` of ``pred`` to ``target`` over the valid
    pixels (MiDaS's ``compute_scale_and_shift``, solved in centred form for float32 accuracy).

    ``(N, H, W)`` -> ``(N, H, W)`` (``t`` at invalid pixels); differentiable in ``pred`` (``s``
    and ``t`` are not detached, as in MiDaS). Where the valid prediction is constant (or an image has fewer than 2
    valid pixels) the fit is the best constant: ``s = 0``, ``t = mean(target)`` (MiDaS sets
    both to 0).
    """
    m = valid.to(pred.dtype)
    n = m.sum((1, 2)).clamp(min=1)
    p = torch.where(valid, pred, 0.0)
    d = torch.where(valid, target, 0.0)
    mean_p = p.sum((1, 2)) / n
    mean_d = d.sum((1, 2)) / n
    pc = (p - mean_p[:, None, None]) * m
    var = pc.square().sum((1, 2))
    cov = (pc * (d - mean_d[:, None, None])).sum((1, 2))
    ok = var > 0
    s = torch.where(ok, cov / torch.where(ok, var, 1.0), 0.0)
    t = mean_d - s * mean_p
    return s[:, None, None] * p + t[:, None, None]


class SILogLoss(nn.Module):
    """Scale-invariant log loss (Eigen et al., 2014), exactly MMSegmentation 1.2.2's
    ``SiLogLoss``: per image, with ``g = log max(target, eps) - log max(pred, eps)`` over the
    pixels with ``target > eps`` (and ``valid``),
    ``sqrt(mean(g^2) - 0.5 mean(g)^2)``, then the mean over the batch (an image without a valid
    pixel counts as 0, as in MMSegmentation). Where an image's value is 0 (a perfect prediction)
    the gradient is 0 here, NaN in MMSegmentation.
    """

    def __init__(self, eps: float = 1e-6, loss_weight: float = 1.0, name: str = "loss_silog"):
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        pred, target = pred.float().flatten(1), target.float().flatten(1)
        g = torch.log(target.clamp(min=self.eps)) - torch.log(pred.clamp(min=self.eps))
        valid = valid.flatten(1) & (target > self.eps) & ~torch.isnan(g)
        g = torch.where(valid, g, 0.0)
        n = valid.sum(1).clamp(min=self.eps)
        mean_sq = g.square().sum(1) / n
        mean = g.sum(1) / n
        return self.loss_weight * _safe_sqrt(mean_sq - 0.5 * mean.square()).mean()


class L1DepthLoss(nn.Module):
    """Mean absolute error ``|pred - target|`` over the valid pixels of the batch (metres)."""

    def __init__(self, loss_weight: float = 1.0, name: str = "loss_l1"):
        super().__init__()
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        residual = (pred.float() - target.float()).abs()
        return self.loss_weight * _masked_mean(residual, valid)


class BerHuLoss(nn.Module):
    """Reverse Huber loss of Laina et al. (3DV 2016): with ``r = |pred - target|`` and
    ``c = threshold * max r`` over the valid pixels of the whole batch (not back-propagated),
    ``r`` where ``r <= c`` and ``(r^2 + c^2) / (2c)`` above; averaged over the valid pixels.
    """

    def __init__(self, threshold: float = 0.2, loss_weight: float = 1.0, name: str = "loss_berhu"):
        super().__init__()
        self.threshold = threshold
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        r = torch.where(valid, (pred.float() - target.float()).abs(), 0.0)
        c = self.threshold * r.detach().amax().clamp(min=torch.finfo(r.dtype).tiny)
        berhu = torch.where(r <= c, r, (r.square() + c.square()) / (2 * c))
        return self.loss_weight * _masked_mean(berhu, valid)


class ScaleShiftInvariantLoss(nn.Module):
    """MiDaS's scale-and-shift-invariant loss (Ranftl et al., TPAMI 2020): per image, the
    prediction is aligned to the target by least squares (:func:`align_scale_shift`), then the
    mean absolute error over the valid pixels of the batch is taken.

    Args:
        disparity: align and compare in inverse depth (``1 / depth``, as MiDaS trains): both the
            prediction (clamped at ``eps``) and the target are inverted first.
        eps: lower bound of the prediction before inversion (metres).
    """

    def __init__(
        self,
        disparity: bool = False,
        eps: float = 1e-3,
        loss_weight: float = 1.0,
        name: str = "loss_ssi",
    ):
        super().__init__()
        self.disparity = disparity
        self.eps = eps
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        pred, target = pred.float(), target.float()
        if self.disparity:
            pred, target = _to_disparity(pred, target, valid, self.eps)
        aligned = align_scale_shift(pred, target, valid)
        return self.loss_weight * _masked_mean((aligned - target).abs(), valid)


class GradientMatchingLoss(nn.Module):
    """MiDaS's multi-scale gradient matching term (Ranftl et al., TPAMI 2020, eq. 11): with the
    residual ``R = pred - target`` (``pred`` aligned by :func:`align_scale_shift` when ``align``),
    ``sum_k sum |dR/dx| + |dR/dy| / M_k`` over ``scales`` levels, level ``k`` taking every
    ``2^k``-th pixel in both directions; a difference counts when both its pixels are valid,
    ``M_k`` is the number of valid pixels of the batch at level ``k`` (MiDaS's batch-based
    reduction). Insensitive to a constant offset; to a scale too when ``align``.

    Args:
        scales: number of levels (4 in MiDaS).
        align: fit scale and shift per image first (MiDaS); ``False``: the raw prediction.
        disparity: work in inverse depth (see :class:`ScaleShiftInvariantLoss`).
    """

    def __init__(
        self,
        scales: int = 4,
        align: bool = True,
        disparity: bool = False,
        eps: float = 1e-3,
        loss_weight: float = 1.0,
        name: str = "loss_grad",
    ):
        super().__init__()
        self.scales = scales
        self.align = align
        self.disparity = disparity
        self.eps = eps
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        pred, target = pred.float(), target.float()
        if self.disparity:
            pred, target = _to_disparity(pred, target, valid, self.eps)
        if self.align:
            pred = align_scale_shift(pred, target, valid)
        residual = torch.where(valid, pred - target, 0.0)
        total = residual.sum() * 0.0  # connected to the graph even without valid pixels
        for k in range(self.scales):
            step = 2**k
            r, m = residual[:, ::step, ::step], valid[:, ::step, ::step]
            mx = m[:, :, 1:] & m[:, :, :-1]
            my = m[:, 1:, :] & m[:, :-1, :]
            gx = torch.where(mx, (r[:, :, 1:] - r[:, :, :-1]).abs(), 0.0).sum()
            gy = torch.where(my, (r[:, 1:, :] - r[:, :-1, :]).abs(), 0.0).sum()
            total = total + (gx + gy) / m.sum().clamp(min=1)
        return self.loss_weight * total


def _nearest_sq_dist(queries: Tensor, points: Tensor, counts: Tensor) -> Tensor:
    """Squared distance from each of ``queries (N, Q)`` to the nearest of the first
    ``counts[i]`` entries of the ascending ``points[i]`` ``(N, P)`` (1-D nearest neighbour by
    binary search; differentiable in both). Entries past ``counts[i]`` may be ``+inf``; a row
    with ``counts[i] == 0`` gives meaningless (finite) values."""
    idx = torch.searchsorted(points.detach().contiguous(), queries.detach().contiguous())
    points = torch.where(torch.isfinite(points), points, 0.0)
    last = (counts - 1).clamp(min=0)[:, None]
    hi = torch.minimum(idx, last)
    lo = torch.minimum((idx - 1).clamp(min=0), last)
    d_lo = (queries - points.gather(1, lo)).square()
    d_hi = (queries - points.gather(1, hi)).square()
    return torch.minimum(d_lo, d_hi)


class BinsChamferLoss(nn.Module):
    """AdaBins' bin-centre loss (Bhat et al., CVPR 2021): per image, the symmetric chamfer
    distance between the bin centres and the set of valid target depths,
    ``mean_c min_d (c - d)^2 + mean_d min_c (c - d)^2`` (squared, means as PyTorch3D's
    ``chamfer_distance`` that AdaBins calls), averaged over the images with a valid pixel.
    Exact 1-D nearest neighbours by sorting, so memory is ``O(H W)``, not ``O(B H W)``.

    ``forward(centres (N, B), target (N, H, W), valid (N, H, W)) -> scalar`` times
    ``loss_weight`` (0.1 in AdaBins).
    """

    def __init__(self, loss_weight: float = 0.1, name: str = "loss_chamfer"):
        super().__init__()
        self.loss_weight = loss_weight
        self.name = name

    def forward(self, centres: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        centres = centres.float()
        valid = valid.flatten(1)
        # Invalid targets sort to the end as +inf and are never reached (counts).
        points = torch.where(valid, target.float().flatten(1), float("inf")).sort(dim=1).values
        counts = valid.sum(1)
        sorted_centres = centres.sort(dim=1).values
        bins = torch.full_like(counts, centres.shape[1])
        to_target = _nearest_sq_dist(sorted_centres, points, counts).mean(1)
        queries = torch.where(torch.isfinite(points), points, 0.0)
        to_centres = _nearest_sq_dist(queries, sorted_centres, bins)
        keep = torch.arange(points.shape[1], device=points.device)[None] < counts[:, None]
        to_centres = torch.where(keep, to_centres, 0.0).sum(1) / counts.clamp(min=1)
        has = counts > 0
        per_image = torch.where(has, to_target + to_centres, 0.0)
        return self.loss_weight * per_image.sum() / has.sum().clamp(min=1)
