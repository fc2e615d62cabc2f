"""Criss-cross attention (CCNet, Huang et al., ICCV 2019) in plain PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CrissCrossAttention"]


class CrissCrossAttention(nn.Module):
    """Each position attends to the positions in its own row and column (``H + W - 1`` of
    them: the position itself is counted once, in the row), one softmax over both.

    The output is ``gamma * attended + x`` with a learnt scalar ``gamma`` initialised to 0, as in
    MMCV's ``CrissCrossAttention`` (same parameters: ``query_conv``/``key_conv`` project to
    ``in_channels // 8``, ``value_conv`` keeps the width).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, in_channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.key_conv = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        h = x.shape[2]
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        # column affinities (N, H, W, H'): query (h, w) against key (h', w); drop h' == h, which
        # the row affinities already hold
        col = torch.einsum("nchw,ncgw->nhwg", q, k)
        same = torch.eye(h, dtype=torch.bool, device=x.device).view(h, 1, h)
        col = col.masked_fill(same, float("-inf"))
        row = torch.einsum("nchw,nchv->nhwv", q, k)  # (N, H, W, W'): against (h, w')
        attn = F.softmax(torch.cat([col, row], dim=-1), dim=-1)
        out = torch.einsum("ncgw,nhwg->nchw", v, attn[..., :h])
        out = out + torch.einsum("nchv,nhwv->nchw", v, attn[..., h:])
        return self.gamma * out + x
