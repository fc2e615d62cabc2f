"""Depth-wise separable FCN decoder (Fast-SCNN's classifier; MMSegmentation's
``DepthwiseSeparableFCNHead``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.lightweight_layers import DepthwiseSeparableConv


class SeparableFCNDecoder(nn.Module):
    """``num_convs`` depth-wise separable convs on ``features[in_index]`` (the depth-wise convs
    have BN but no activation, as MMSegmentation's ``dw_act_cfg=None``); with ``concat_input``
    the input is concatenated to their output and fused by one more separable conv.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 128,
        in_index: int = -1,
        num_convs: int = 2,
        kernel_size: int = 3,
        concat_input: bool = False,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError("SeparableFCNDecoder needs num_convs >= 1")
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.convs = nn.Sequential(
            *(
                DepthwiseSeparableConv(
                    c_in if i == 0 else channels, channels, kernel_size, dw_activation=None
                )
                for i in range(num_convs)
            )
        )
        self.conv_cat = (
            DepthwiseSeparableConv(c_in + channels, channels, kernel_size, dw_activation=None)
            if concat_input
            else None
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out
