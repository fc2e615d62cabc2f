"""The pure-PyTorch context ops against direct per-position definitions (tiny maps)."""

from __future__ import annotations

import pytest
import torch

from segkit.models.ops.criss_cross_attention import CrissCrossAttention
from segkit.models.ops.psa_mask import psa_mask


@pytest.mark.parametrize("mask_size", [(3, 5), (7, 9), (9, 3)])
def test_psa_mask_matches_window_definition(mask_size: tuple[int, int]) -> None:
    n, h, w = 2, 4, 5
    mh, mw = mask_size
    mask = torch.randn(n, mh * mw, h, w, requires_grad=True)
    collect = psa_mask(mask, "collect", mask_size)
    distribute = psa_mask(mask, "distribute", mask_size)
    expect = torch.zeros(n, h * w, h * w)  # [p, q]: weight of q in p's window
    for y in range(h):
        for x in range(w):
            for a in range(mh):
                for b in range(mw):
                    i, j = y + a - (mh - 1) // 2, x + b - (mw - 1) // 2
                    if 0 <= i < h and 0 <= j < w:
                        expect[:, y * w + x, i * w + j] = mask[:, a * mw + b, y, x]
    torch.testing.assert_close(distribute.reshape(n, h * w, h * w), expect)
    torch.testing.assert_close(collect.reshape(n, h * w, h * w), expect.transpose(1, 2))
    (collect.sum() + distribute.sum()).backward()
    assert mask.grad is not None and torch.isfinite(mask.grad).all()


def test_criss_cross_attention_matches_per_position_softmax() -> None:
    torch.manual_seed(0)
    cca = CrissCrossAttention(16).eval()
    with torch.no_grad():
        cca.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 4)
    out = cca(x)
    q, k, v = cca.query_conv(x), cca.key_conv(x), cca.value_conv(x)
    expect = torch.empty_like(x)
    for y in range(3):
        for xx in range(4):
            # the column without the position itself, then the whole row
            keys = [(i, xx) for i in range(3) if i != y] + [(y, j) for j in range(4)]
            logits = torch.stack([(q[:, :, y, xx] * k[:, :, i, j]).sum(1) for i, j in keys], 1)
            weights = logits.softmax(dim=1)
            values = torch.stack([v[:, :, i, j] for i, j in keys], 2)
            expect[:, :, y, xx] = (values * weights[:, None]).sum(2)
    torch.testing.assert_close(out, 0.7 * expect + x)
