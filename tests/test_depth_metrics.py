"""DepthMetrics: an independent numpy reference, MMSegmentation 1.2.2's DepthMetric (fixture made
by ``scripts/make_depth_metric_fixture.py``) and exact accumulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.metrics.depth import DEPTH_METRICS, DepthMetrics, depth_eval_mask

FIXTURE = Path(__file__).parent / "parity" / "fixtures" / "depth_metric.pt"
MMSEG_NAMES = {
    "d1": "d1",
    "d2": "d2",
    "d3": "d3",
    "AbsRel": "abs_rel",
    "SqRel": "sq_rel",
    "RMSE": "rmse",
    "RMSE_log": "rmse_log",
    "log10": "log10",
    "SILog": "silog",
}


def depth_pair(seed: int, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixture script's generator (kept in step with it; the fixture's checksum checks)."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.05, 12.0, (n, h, w))
    base = np.where(rng.random((n, h, w)) < 0.2, 0.0, target)
    pred = np.where(base > 0, base, rng.uniform(0.05, 12.0, (n, h, w)))
    pred = pred * np.exp(rng.normal(0.0, 0.25, (n, h, w)))
    return pred.astype(np.float32), base.astype(np.float32)


def reference(pred, target, min_depth, max_depth, crop=None) -> dict[str, float]:
    """Per-image metrics (Eigen et al. / BTS definitions), averaged over images, in float64."""
    rows = []
    for p, d in zip(pred.astype(np.float64), target.astype(np.float64)):
        h, w = d.shape
        keep = d > min_depth
        if max_depth is not None:
            keep &= d < max_depth
        box = np.zeros_like(keep)
        if crop == "eigen":
            box[45:471, 41:601] = True
        elif crop == "garg":
            box[
                int(0.40810811 * h) : int(0.99189189 * h), int(0.03594771 * w) : int(0.96405229 * w)
            ] = True
        else:
            box[:] = True
        keep &= box
        if not keep.any():
            continue
        p, d = p[keep], d[keep]
        ratio = np.maximum(p / d, d / p)
        g = np.log(p) - np.log(d)
        rows.append(
            [
                np.mean(ratio < 1.25),
                np.mean(ratio < 1.25**2),
                np.mean(ratio < 1.25**3),
                np.mean(np.abs(p - d) / d),
                np.mean((p - d) ** 2 / d),
                np.sqrt(np.mean((p - d) ** 2)),
                np.sqrt(np.mean(g**2)),
                np.mean(np.abs(np.log10(p) - np.log10(d))),
                np.sqrt(np.mean(g**2) - 0.5 * np.mean(g) ** 2),
            ]
        )
    return dict(zip(DEPTH_METRICS, np.mean(rows, axis=0)))


def run(pred, target, **kwargs) -> dict[str, float]:
    metric = DepthMetrics(**kwargs)
    metric.update(torch.from_numpy(pred), torch.from_numpy(target))
    return {k: float(v) for k, v in metric.compute().items()}


@pytest.mark.parametrize(
    ("shape", "min_depth", "max_depth", "crop"),
    [
        ((3, 20, 24), 1e-3, 10.0, None),
        ((2, 17, 29), 0.5, None, None),
        ((2, 480, 640), 1e-3, 10.0, "eigen"),
        ((3, 40, 90), 1e-3, 8.0, "garg"),
    ],
)
def test_matches_numpy_reference(shape, min_depth, max_depth, crop):
    pred, target = depth_pair(7, *shape)
    target[0, :5] = 0.0  # unmeasured rows
    target[-1, -3:] = 11.5  # beyond max_depth when bounded
    got = run(pred, target, min_depth=min_depth, max_depth=max_depth, crop=crop)
    want = reference(pred, target, min_depth, max_depth, crop)
    for name in DEPTH_METRICS:
        assert got[name] == pytest.approx(want[name], rel=1e-5, abs=1e-7), name


def test_matches_mmseg_depth_metric():
    assert FIXTURE.is_file(), "run scripts/make_depth_metric_fixture.py in the mmseg venv"
    fixture = torch.load(FIXTURE, weights_only=True)
    assert len(fixture["cases"]) >= 3
    for case in fixture["cases"]:
        pred, target = depth_pair(case["seed"], *case["shape"])
        checksum = float(np.float64(pred).sum() + np.float64(target).sum())
        assert checksum == pytest.approx(case["checksum"], rel=1e-12), "generator out of step"
        got = run(
            pred,
            target,
            min_depth=case["min_depth"],
            max_depth=case["max_depth"],
            crop=case["crop"],
        )
        for name, mmseg_name in MMSEG_NAMES.items():
            want = case["metrics"][mmseg_name]
            assert got[name] == pytest.approx(want, rel=1e-5), (case["seed"], name)


def test_accumulation_is_exact_and_mergeable():
    pred, target = (torch.from_numpy(a) for a in depth_pair(3, 7, 16, 20))
    target[2] = 0.0  # an image without valid pixels is skipped, not averaged in as NaN
    whole = DepthMetrics()
    whole.update(pred, target)
    split = DepthMetrics()
    for chunk in ((0, 1), (1, 4), (4, 7)):
        split.update(pred[slice(*chunk)], target[slice(*chunk)])
    # Two "processes", merged as DDP sync would (state sums).
    rank0, rank1 = DepthMetrics(), DepthMetrics()
    rank0.update(pred[:3], target[:3])
    rank1.update(pred[3:], target[3:])
    rank0.merge_state(rank1)
    expected = whole.compute()
    assert int(whole.images) == 6
    for other in (split.compute(), rank0.compute()):
        for name in DEPTH_METRICS:
            torch.testing.assert_close(other[name], expected[name], rtol=1e-6, atol=0)


def test_perfect_prediction_and_options():
    _, target = depth_pair(5, 2, 12, 16)
    target_t = torch.from_numpy(target)
    metric = DepthMetrics(max_depth=None)
    metric.update(target_t.unsqueeze(1), target_t.unsqueeze(1))  # (N, 1, H, W) accepted
    values = metric.compute()
    assert all(float(values[k]) == 1.0 for k in ("d1", "d2", "d3"))
    assert all(float(values[k]) == 0.0 for k in DEPTH_METRICS[3:])
    # clamp_pred: a 0 / 100 m prediction is scored as min / max depth (BTS protocol).
    pred = target_t.clone()
    pred[:, 0, 0], pred[:, 0, 1] = 0.0, 100.0
    clamped = DepthMetrics(clamp_pred=True)
    clamped.update(pred, target_t)
    manual = DepthMetrics()
    manual.update(pred.clamp(1e-3, 10.0), target_t)
    assert clamped.compute() == manual.compute()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(DepthMetrics().compute()["AbsRel"])  # nothing scored yet
    with pytest.raises(ValueError, match="480x640"):
        depth_eval_mask(target_t, 1e-3, 10.0, crop="eigen")
    with pytest.raises(ValueError, match="crop"):
        DepthMetrics(crop="nyu")
