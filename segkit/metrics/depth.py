"""DepthMetrics: the standard monocular depth metrics, averaged over images, synced across
processes."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["DepthMetrics", "depth_eval_mask"]

#: metric names, in the order ``compute`` returns them
DEPTH_METRICS = ("d1", "d2", "d3", "AbsRel", "SqRel", "RMSE", "RMSE_log", "log10", "SILog")


def depth_eval_mask(
    target: Tensor, min_depth: float, max_depth: float | None, crop: str | None = None
) -> Tensor:
    """Pixels that count in the evaluation: ``min_depth < target (< max_depth)``, inside ``crop``.

    ``target (..., H, W)`` metres -> bool mask of the same shape. ``crop``:

    - ``"eigen"``: the NYU Depth v2 crop of Eigen et al. (rows 45:471, columns 41:601), on the
      full 480x640 maps only (MMSegmentation's ``crop_type="nyu_crop"``).
    - ``"garg"``: the KITTI crop of Garg et al., fractions of the map size: rows
      ``int(0.40810811 H):int(0.99189189 H)``, columns ``int(0.03594771 W):int(0.96405229 W)``
      (as in BTS / the Monocular-Depth-Estimation-Toolbox; MMSegmentation has no KITTI crop).
    """
    valid = target > min_depth
    if max_depth is not None:
        valid &= target < max_depth
    if crop is None:
        return valid
    h, w = target.shape[-2:]
    if crop == "eigen":
        if (h, w) != (480, 640):
            raise ValueError(f"crop='eigen' is defined on 480x640 NYU maps, got {h}x{w}")
        rows, cols = slice(45, 471), slice(41, 601)
    elif crop == "garg":
        rows = slice(int(0.40810811 * h), int(0.99189189 * h))
        cols = slice(int(0.03594771 * w), int(0.96405229 * w))
    else:
        raise ValueError(f"crop must be None, 'eigen' or 'garg', got {crop!r}")
    inside = torch.zeros_like(valid)
    inside[..., rows, cols] = True
    return valid & inside


class DepthMetrics(Metric):
    """d1, d2, d3, AbsRel, SqRel, RMSE, RMSE_log, log10 and SILog of depth maps in metres.

    Definitions are those of MMSegmentation 1.2.2's ``DepthMetric``, so the numbers are the same.
    On the valid pixels of one image (``d`` = target, ``p`` = prediction, ``g = log p - log d``):

    - ``d_k``: fraction with ``max(d / p, p / d) < 1.25 ** k`` (strict), k = 1, 2, 3;
    - ``AbsRel = mean(|p - d| / d)``, ``SqRel = mean((p - d)^2 / d)``;
    - ``RMSE = sqrt(mean((p - d)^2))``, ``RMSE_log = sqrt(mean(g^2))``;
    - ``log10 = mean(|log10 p - log10 d|)``;
    - ``SILog = sqrt(mean(g^2) - 0.5 mean(g)^2)`` (natural log, not times 100).

    Each metric is computed **per image and then averaged over images** (MMSegmentation's
    ``compute_metrics``), not pooled over all pixels. The state is the sum of the per-image
    values and the number of images (float64, summed across processes): exact, whatever the
    batching. Images without a valid pixel are skipped (MMSegmentation would return NaN).

    Args:
        min_depth, max_depth: valid pixels have ``min_depth < target < max_depth`` (metres;
            ``max_depth=None``: no upper bound). Pixels with target 0 (unmeasured) never count.
            MMSegmentation's NYU config: 1e-3 and 10.
        crop: ``None``, ``"eigen"`` (NYU, 480x640) or ``"garg"`` (KITTI); see
            :func:`depth_eval_mask`.
        clamp_pred: clamp predictions to ``[min_depth, max_depth]`` (NaN -> ``min_depth``,
            inf -> ``max_depth``) before scoring, as the BTS / AdaBins evaluation scripts do.
            Off by default: MMSegmentation scores the prediction as it is.

    ``update(pred (N, H, W), target (N, H, W))`` in metres (``(N, 1, H, W)`` is accepted too).
    ``compute() -> {"d1", "d2", "d3", "AbsRel", "SqRel", "RMSE", "RMSE_log", "log10", "SILog"}``,
    scalar tensors; d_k are fractions in [0, 1].
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None  # d_k: higher, errors: lower

    def __init__(
        self,
        min_depth: float = 1e-3,
        max_depth: float | None = 10.0,
        crop: str | None = None,
        clamp_pred: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if crop not in (None, "eigen", "garg"):
            raise ValueError(f"crop must be None, 'eigen' or 'garg', got {crop!r}")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.crop = crop
        self.clamp_pred = clamp_pred
        zeros = torch.zeros(len(DEPTH_METRICS), dtype=torch.float64)
        self.add_state("sums", default=zeros, dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim == 4 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if target.ndim == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if pred.shape != target.shape or pred.ndim != 3:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (N, H, W)"
            )
        mask = depth_eval_mask(target, self.min_depth, self.max_depth, self.crop).flatten(1)
        pred = pred.detach().flatten(1).double()
        target = target.detach().flatten(1).double()
        if self.clamp_pred:
            high = self.max_depth if self.max_depth is not None else torch.finfo(pred.dtype).max
            pred = torch.nan_to_num(pred, nan=self.min_depth, posinf=high)
            pred = pred.clamp(self.min_depth, high)
        # Invalid pixels get p = d = 1 (finite logs, zero error) and weight 0.
        one = torch.ones((), dtype=pred.dtype, device=pred.device)
        p = torch.where(mask, pred, one)
        d = torch.where(mask, target, one)
        m = mask.double()
        n = m.sum(1)
        keep = n > 0
        n = n.clamp(min=1)

        def mean(x: Tensor) -> Tensor:
            return (x * m).sum(1) / n

        ratio = torch.maximum(d / p, p / d)
        diff = p - d
        g = torch.log(p) - torch.log(d)
        per_image = torch.stack(
            [
                mean((ratio < 1.25).double()),
                mean((ratio < 1.25**2).double()),
                mean((ratio < 1.25**3).double()),
                mean(diff.abs() / d),
                mean(diff.square() / d),
                mean(diff.square()).sqrt(),
                mean(g.square()).sqrt(),
                mean((torch.log10(p) - torch.log10(d)).abs()),
                (mean(g.square()) - 0.5 * mean(g).square()).clamp(min=0).sqrt(),
            ],
            dim=1,
        )  # (N, 9)
        self.sums += per_image[keep].sum(0)
        self.images += keep.sum()

    def compute(self) -> dict[str, Tensor]:
        values = self.sums / self.images.clamp(min=1)
        if self.images == 0:
            values = torch.full_like(values, float("nan"))
        return {name: values[i].float() for i, name in enumerate(DEPTH_METRICS)}
