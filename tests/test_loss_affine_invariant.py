"""The affine-invariant disparity loss of Depth Anything's relative models."""

from __future__ import annotations

import torch

from segkit.models.losses.affine_invariant import AffineInvariantLoss


def test_zero_for_any_scale_and_shift_of_the_true_disparity_and_blind_to_invalid_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 8, 8, generator=g) * 9 + 0.5
    valid = torch.rand(2, 8, 8, generator=g) > 0.3
    target = torch.where(valid, depth, 0.0)
    scale = torch.tensor([3.0, 0.2]).view(2, 1, 1)
    shift = torch.tensor([-1.0, 5.0]).view(2, 1, 1)
    pred = scale / depth + shift
    pred = torch.where(valid, pred, 1e3)  # values at invalid pixels change nothing
    loss = AffineInvariantLoss(loss_weight=2.0)
    assert loss(pred, target, valid).item() < 1e-5
    assert loss(depth, target, valid).item() > 0.1  # depth is not disparity
    noisy = pred + 0.1 * torch.randn(2, 8, 8, generator=g)
    assert (
        abs(
            loss(noisy, target, valid).item()
            - 2 * AffineInvariantLoss()(noisy, target, valid).item()
        )
        < 1e-6
    )


def test_no_valid_pixel_gives_a_connected_zero() -> None:
    pred = torch.rand(1, 4, 4, requires_grad=True)
    out = AffineInvariantLoss()(pred, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool))
    out.backward()
    assert out.item() == 0 and pred.grad is not None
