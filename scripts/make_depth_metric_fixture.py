"""Make the depth parity fixtures: MMSegmentation 1.2.2's ``DepthMetric`` and ``SiLogLoss`` on
seeded random depth maps, for ``tests/test_depth_metrics.py`` and ``tests/test_depth_losses.py``.

Runs in the MMSegmentation reference environment, not in segkit's::

    /work/mmseg-venv/bin/python scripts/make_depth_metric_fixture.py

Writes ``tests/parity/fixtures/depth_metric.pt``: for each case its seed, map size and options,
a checksum of the inputs and MMSegmentation's metrics. The inputs are not stored; the test
redraws them with the same :func:`depth_pair` (numpy's PCG64, identical on both sides) and
checks the checksum first. Writes ``tests/parity/fixtures/silog_loss.pt``: small inputs (stored),
MMSegmentation's ``SiLogLoss`` value and its gradient with respect to the prediction.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "parity" / "fixtures"
SHIM = Path("/work/shared/reference/mmseg")

# (seed, images, height, width, min_depth, max_depth (None: no bound), crop (segkit's name))
METRIC_CASES = [
    (0, 3, 48, 64, 1e-3, 10.0, None),
    (1, 2, 480, 640, 1e-3, 10.0, "eigen"),
    (2, 3, 40, 56, 1e-3, None, None),
    (3, 2, 33, 47, 0.5, 8.0, None),
]


def depth_pair(seed: int, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, target)`` float32 ``(n, h, w)`` metres: targets in [0.05, 12) with ~20% zeros
    (unmeasured), predictions = target (or a fresh draw where it is 0) times a log-normal
    factor (sigma 0.25), so that every threshold and error is exercised."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.05, 12.0, (n, h, w))
    base = np.where(rng.random((n, h, w)) < 0.2, 0.0, target)
    pred = np.where(base > 0, base, rng.uniform(0.05, 12.0, (n, h, w)))
    pred = pred * np.exp(rng.normal(0.0, 0.25, (n, h, w)))
    return pred.astype(np.float32), base.astype(np.float32)


def checksum(*arrays: np.ndarray) -> float:
    return float(sum(np.float64(a).sum() for a in arrays))


def _import_mmseg():
    sys.path.insert(0, str(SHIM))
    import mmcv_shim

    mmcv_shim.install()
    from mmseg.evaluation.metrics.depth_metric import DepthMetric
    from mmseg.models.losses.silog_loss import SiLogLoss

    return DepthMetric, SiLogLoss


def main() -> None:
    depth_metric, silog = _import_mmseg()
    cases = []
    for seed, n, h, w, lo, hi, crop in METRIC_CASES:
        pred, target = depth_pair(seed, n, h, w)
        metric = depth_metric(
            min_depth_eval=lo,
            max_depth_eval=float("inf") if hi is None else hi,
            crop_type={None: None, "eigen": "nyu_crop"}[crop],
        )
        samples = [
            {
                "pred_depth_map": {"data": torch.from_numpy(p)[None]},
                "gt_depth_map": {"data": torch.from_numpy(t)[None]},
            }
            for p, t in zip(pred, target)
        ]
        metric.process({}, samples)
        values = metric.compute_metrics(metric.results)
        cases.append(
            {
                "seed": seed,
                "shape": (n, h, w),
                "min_depth": lo,
                "max_depth": hi,
                "crop": crop,
                "checksum": checksum(pred, target),
                "metrics": {k: float(v) for k, v in values.items()},
            }
        )
        print(seed, crop, {k: round(v, 5) for k, v in values.items()})
    torch.save({"cases": cases}, FIXTURES / "depth_metric.pt")

    # SiLogLoss: 3 images, zeros in the target, a few predictions below eps; a 4th case adds an
    # image without valid pixels (MMSegmentation counts it as 0 in the batch mean).
    pred, target = depth_pair(10, 3, 12, 16)
    pred[:, 0, :3] = 0.0
    silog_cases = []
    for empty in (False, True):
        t = torch.from_numpy(target.copy())
        if empty:
            t[1] = 0.0
        p = torch.from_numpy(pred.copy()).requires_grad_(True)
        loss = silog(loss_weight=0.7)(p, t)
        loss.backward()
        silog_cases.append(
            {"pred": p.detach(), "target": t, "loss": loss.detach(), "grad": p.grad.clone()}
        )
        print("silog", empty, float(loss.detach()))
    torch.save({"cases": silog_cases, "loss_weight": 0.7, "eps": 1e-6}, FIXTURES / "silog_loss.pt")


if __name__ == "__main__":
    main()
