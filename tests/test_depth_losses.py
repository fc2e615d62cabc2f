"""Depth losses: zero at the optimum, their invariances, masking, and SILog against
MMSegmentation 1.2.2's SiLogLoss (fixture made by ``scripts/make_depth_metric_fixture.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segkit.models.losses.depth import (
    BerHuLoss,
    BinsChamferLoss,
    GradientMatchingLoss,
    L1DepthLoss,
    ScaleShiftInvariantLoss,
    SILogLoss,
    align_scale_shift,
)

FIXTURE = Path(__file__).parent / "parity" / "fixtures" / "silog_loss.pt"

DEPTH_LOSSES = [
    SILogLoss,
    L1DepthLoss,
    BerHuLoss,
    ScaleShiftInvariantLoss,
    lambda: ScaleShiftInvariantLoss(disparity=True),
    GradientMatchingLoss,
    lambda: GradientMatchingLoss(align=False),
]


def sample(seed: int = 0, n: int = 2, h: int = 16, w: int = 20):
    """``(pred, target, valid)``: depths in [0.5, 10) m, ~25% of the target unmeasured (0)."""
    g = torch.Generator().manual_seed(seed)
    target = 0.5 + 9.5 * torch.rand(n, h, w, generator=g)
    target[torch.rand(n, h, w, generator=g) < 0.25] = 0.0
    pred = 0.5 + 9.5 * torch.rand(n, h, w, generator=g)
    return pred, target, target > 0


@pytest.mark.parametrize("make", DEPTH_LOSSES)
def test_zero_for_perfect_prediction(make):
    _, target, valid = sample()
    pred = torch.where(valid, target, 3.0).requires_grad_(True)
    loss = make()(pred, target, valid)
    assert loss.ndim == 0
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("make", DEPTH_LOSSES)
def test_invalid_pixels_are_ignored(make):
    pred, target, valid = sample(1)
    loss_fn = make()
    a = pred.clone().requires_grad_(True)
    loss_a = loss_fn(a, target, valid)
    loss_a.backward()
    # Other values, even negative ones, at the pixels that are not valid.
    noise = 20 * torch.rand(pred.shape, generator=torch.Generator().manual_seed(9)) - 5
    b = torch.where(valid, pred, noise).requires_grad_(True)
    loss_b = loss_fn(b, torch.where(valid, target, noise.abs() + 1), valid)
    loss_b.backward()
    torch.testing.assert_close(loss_b, loss_a)
    torch.testing.assert_close(b.grad, a.grad)
    assert (a.grad[~valid] == 0).all()
    assert a.grad[valid].abs().sum() > 0


@pytest.mark.parametrize("make", DEPTH_LOSSES)
def test_no_valid_pixel_gives_a_connected_zero(make):
    pred, target, _ = sample(2)
    pred.requires_grad_(True)
    loss = make(loss_weight=2.0) if isinstance(make, type) else make()
    value = loss(pred, target, torch.zeros_like(target, dtype=torch.bool))
    assert float(value.detach()) == 0.0
    value.backward()
    assert (pred.grad == 0).all()


def test_silog_matches_mmseg():
    assert FIXTURE.is_file(), "run scripts/make_depth_metric_fixture.py in the mmseg venv"
    fixture = torch.load(FIXTURE, weights_only=True)
    loss_fn = SILogLoss(eps=fixture["eps"], loss_weight=fixture["loss_weight"])
    assert len(fixture["cases"]) == 2  # the second has an image without valid pixels
    for case in fixture["cases"]:
        pred = case["pred"].clone().requires_grad_(True)
        target = case["target"]
        loss = loss_fn(pred, target, target > 0)
        torch.testing.assert_close(loss, case["loss"], rtol=1e-5, atol=0)
        loss.backward()
        torch.testing.assert_close(pred.grad, case["grad"], rtol=1e-4, atol=1e-8)


def test_silog_is_scale_invariant_in_its_variance_term():
    pred, target, valid = sample(3)
    # sqrt(var + 0.5 mean^2) of the log error: a global scale only changes the mean term.
    loss = SILogLoss()(pred, target, valid)
    assert float(SILogLoss()(pred * 1.5, target, valid)) != pytest.approx(float(loss))
    g = torch.where(valid, target.log() - pred.log(), 0.0).flatten(1)
    n = valid.flatten(1).sum(1)
    manual = ((g**2).sum(1) / n - 0.5 * (g.sum(1) / n) ** 2).sqrt().mean()
    torch.testing.assert_close(loss, manual)


def test_l1_and_berhu_values():
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    valid = target < 5  # the last pixel (residual 10) is not valid
    pred = target + torch.tensor([[[0.1, -0.5, 1.0, -2.0, 10.0]]])
    l1 = L1DepthLoss(loss_weight=3.0)(pred, target, valid)
    torch.testing.assert_close(l1, torch.tensor(3.0 * (0.1 + 0.5 + 1.0 + 2.0) / 4))
    # c = 0.2 * 2 = 0.4: |r| below c as L1, above (r^2 + c^2) / 2c.
    c = 0.4
    expected = (0.1 + (0.25 + c * c) / (2 * c) + (1 + c * c) / (2 * c) + (4 + c * c) / (2 * c)) / 4
    torch.testing.assert_close(BerHuLoss()(pred, target, valid), torch.tensor(expected))
    # All residuals below c (a larger threshold): BerHu equals L1.
    torch.testing.assert_close(
        BerHuLoss(threshold=1.0)(pred, target, valid), L1DepthLoss()(pred, target, valid)
    )


def test_scale_shift_invariance():
    pred, target, valid = sample(4)
    ssi = ScaleShiftInvariantLoss()
    base = ssi(pred, target, valid)
    assert float(base) > 0.1
    for scale, shift in ((2.5, -0.7), (0.1, 4.0), (-3.0, 1.0)):
        torch.testing.assert_close(
            ssi(scale * pred + shift, target, valid), base, rtol=1e-4, atol=0
        )
    # An affine copy of the target is a perfect prediction.
    assert float(ssi(0.3 * target + 2.0, target, valid)) == pytest.approx(0.0, abs=1e-5)
    # In disparity space, a scaled depth (1/(s d) = (1/s)(1/d)) is perfect, a shifted one is not.
    disp = ScaleShiftInvariantLoss(disparity=True)
    assert float(disp(4.0 * target + (~valid), target, valid)) == pytest.approx(0.0, abs=1e-5)
    assert float(disp(target + 1.0, target, valid)) > 1e-3


def test_align_scale_shift_is_the_least_squares_fit():
    pred, target, valid = sample(5, n=1)
    aligned = align_scale_shift(pred, target, valid)
    p, d = pred[valid].double(), target[valid].double()
    solution = torch.linalg.lstsq(torch.stack([p, torch.ones_like(p)], 1), d[:, None]).solution
    torch.testing.assert_close(
        aligned[valid].double(), solution[0] * p + solution[1], rtol=1e-5, atol=1e-5
    )
    # A constant prediction: the best constant, the mean of the target.
    flat = align_scale_shift(torch.full_like(pred, 2.0), target, valid)
    torch.testing.assert_close(flat[valid], torch.full_like(flat[valid], float(d.mean())))


def test_gradient_matching_invariances():
    pred, target, valid = sample(6)
    aligned, raw = GradientMatchingLoss(), GradientMatchingLoss(align=False)
    for loss_fn in (aligned, raw):
        base = loss_fn(pred, target, valid)
        assert float(base) > 0
        torch.testing.assert_close(loss_fn(pred + 3.0, target, valid), base, rtol=1e-4, atol=0)
    torch.testing.assert_close(
        aligned(2.0 * pred, target, valid), aligned(pred, target, valid), rtol=1e-4, atol=0
    )
    assert float(raw(2.0 * pred, target, valid)) > 1.5 * float(raw(pred, target, valid))
    # Hand check on one scale: residual [0, 1, 3] along a row -> |1| + |2| over 3 pixels.
    target = torch.ones(1, 1, 3)
    pred = target + torch.tensor([[[0.0, 1.0, 3.0]]])
    one = GradientMatchingLoss(scales=1, align=False)(pred, target, target > 0)
    torch.testing.assert_close(one, torch.tensor(3.0 / 3))


def test_chamfer_loss():
    chamfer = BinsChamferLoss(loss_weight=1.0)
    centres = torch.tensor([[1.0, 2.0, 4.0], [0.5, 0.7, 0.9]])
    target = torch.tensor([[[4.0, 2.0, 0.0], [1.0, 1.0, 4.0]], [[0.9, 0.7, 0.5], [0.5, 0.0, 0.0]]])
    assert float(chamfer(centres, target, target > 0)) == 0.0
    # Against brute force on random values, with an image without valid pixels.
    g = torch.Generator().manual_seed(0)
    centres = (10 * torch.rand(3, 8, generator=g)).requires_grad_(True)
    target = 10 * torch.rand(3, 5, 6, generator=g)
    valid = torch.rand(3, 5, 6, generator=g) > 0.3
    valid[2] = False
    loss = chamfer(centres, target, valid)
    expected = 0
    for c, t, m in zip(centres[:2], target[:2], valid[:2]):
        dist = (c[:, None] - t[m][None]) ** 2
        expected = expected + dist.min(1).values.mean() + dist.min(0).values.mean()
    torch.testing.assert_close(loss, expected / 2)
    loss.backward()
    assert torch.isfinite(centres.grad).all() and (centres.grad[2] == 0).all()
    assert centres.grad[:2].abs().sum() > 0
    assert BinsChamferLoss().loss_weight == 0.1
