"""ISANet (Huang et al., Interlaced Sparse Self-Attention for Semantic Segmentation, 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import SelfAttentionBlock
from segkit.models.layers import ConvBNReLU


class ISABlock(SelfAttentionBlock):
    """Self-attention with two ConvBNReLU per query/key projection and a ConvBNReLU output
    projection (MMSegmentation's ISA ``SelfAttentionBlock``).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(
            in_channels,
            in_channels,
            channels,
            in_channels,
            key_query_num_convs=2,
            key_query_norm=True,
            value_out_norm=False,
            matmul_norm=True,
            with_out=False,
        )
        self.output_project = ConvBNReLU(in_channels, in_channels)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.output_project(super().forward(x, x))


class ISADecoder(nn.Module):
    """Interlaced sparse self-attention on ``features[in_index]``: after a 3x3 ConvBNReLU the
    map is split into ``down_factor`` cells (zero-padded to a multiple, centred); attention
    runs first among positions with the same offset in their cell (long range), then within
    each cell (short range); the result is concatenated with the input of the attention and
    fused by a 1x1 ConvBNReLU (MMSegmentation's ``ISAHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        isa_channels: int = 256,
        down_factor: Sequence[int] = (8, 8),
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        self.down_factor = tuple(down_factor)
        self.in_conv = ConvBNReLU(in_channels[in_index], channels, 3)
        self.global_relation = ISABlock(channels, isa_channels)
        self.local_relation = ISABlock(channels, isa_channels)
        self.out_conv = ConvBNReLU(2 * channels, channels)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        residual = x = self.in_conv(features[self.in_index])
        n, c, h, w = x.shape
        lh, lw = self.down_factor  # cell size
        gh, gw = math.ceil(h / lh), math.ceil(w / lw)  # number of cells
        ph, pw = gh * lh - h, gw * lw - w
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        x = x.view(n, c, gh, lh, gw, lw)
        # long range: one map of (gh, gw) cells per in-cell offset
        x = x.permute(0, 3, 5, 1, 2, 4).reshape(-1, c, gh, gw)
        x = self.global_relation(x).view(n, lh, lw, c, gh, gw)
        # short range: one (lh, lw) map per cell
        x = x.permute(0, 4, 5, 3, 1, 2).reshape(-1, c, lh, lw)
        x = self.local_relation(x).view(n, gh, gw, c, lh, lw)
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(n, c, gh * lh, gw * lw)
        x = x[:, :, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        return self.out_conv(torch.cat([x, residual], dim=1))
