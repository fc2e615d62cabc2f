"""BinsDepthHead (AdaBins): shapes, range, gradients, losses."""

from __future__ import annotations

import pytest
import torch

from segkit.models.heads.depth_bins import BinsDepthHead
from segkit.models.losses.depth import L1DepthLoss

TINY = dict(num_bins=16, embed_dim=16, num_queries=8, patch_size=2, num_layers=2, ffn_dim=32)


def make_head(**kwargs) -> BinsDepthHead:
    torch.manual_seed(0)
    return BinsDepthHead(in_channels=6, min_depth=0.5, max_depth=8.0, **{**TINY, **kwargs})


@pytest.mark.parametrize("norm", ["linear", "softmax", "sigmoid"])
def test_shapes_and_range(norm):
    head = make_head(norm=norm).eval()
    x = 5 * torch.randn(2, 6, 8, 12)  # 4 x 6 = 24 patches >= num_queries + 1
    with torch.no_grad():
        depth = head(x)
        widths, attention = head.bins(x)
    assert depth.shape == (2, 1, 8, 12)
    assert ((depth >= 0.5) & (depth <= 8.0)).all()
    assert widths.shape == (2, 16) and (widths > 0).all()
    torch.testing.assert_close(widths.sum(1), torch.ones(2))
    assert attention.shape == (2, 8, 8, 12)
    assert head.num_classes == 1
    assert head.postprocess(depth[0]).shape == (8, 12)


def test_training_outputs_losses_and_gradients():
    head = make_head(dropout=0.0).train()
    x = torch.randn(2, 6, 8, 12)
    out = head(x)
    assert set(out) == {"depth", "centres"}
    centres = out["centres"]
    assert centres.shape == (2, 16)
    assert (centres.diff(dim=1) > 0).all() and (centres > 0.5).all() and (centres < 8.0).all()
    target = 0.5 + 7.5 * torch.rand(2, 16, 24)  # the label size: the loss resizes the output
    target[:, :4] = 0.0
    losses = head.loss(out, {"depth": target}, prefix="depth/")
    assert set(losses) == {"depth/loss_silog", "depth/loss_chamfer"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Eval-mode output (a tensor) goes through the same loss, without the chamfer term.
    head.eval()
    with torch.no_grad():
        assert set(head.loss(head(x), {"depth": target})) == {"loss_silog"}


def test_options_and_errors():
    head = make_head(losses=[L1DepthLoss()], chamfer_weight=0.0).train()
    out = head(torch.randn(1, 6, 8, 8))
    assert set(head.loss(out, {"depth": torch.ones(1, 8, 8)})) == {"loss_l1"}
    with pytest.raises(ValueError, match="patches"):
        make_head()(torch.randn(1, 6, 4, 4))  # 4 patches < num_queries + 1
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        BinsDepthHead(6, min_depth=1.0, max_depth=None)


def test_chamfer_zero_when_centres_equal_targets():
    head = make_head()
    centres = head.train()(torch.randn(1, 6, 8, 12))["centres"].detach()
    target = centres[0].repeat(12).reshape(1, 8, 24)  # every centre, and nothing else
    assert float(head.chamfer(centres, target, target > 0)) == 0.0
    assert float(head.chamfer(centres, target + 0.01, target > 0)) > 0.0
