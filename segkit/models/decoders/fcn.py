"""FCN decoder: a stack of 3x3 convs on one encoder stage (also MMSegmentation's auxiliary head)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class FCNDecoder(nn.Module):
    """``num_convs`` ConvBNReLU layers on ``features[in_index]``; with ``concat_input`` the input
    is concatenated to their output and fused by one more conv.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        in_index: int = -1,
        num_convs: int = 2,
        kernel_size: int = 3,
        dilation: int = 1,
        concat_input: bool = True,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        c_in = in_channels[in_index]
        self.output_stride = in_strides[in_index]
        if num_convs == 0 and c_in != channels:
            raise ValueError(f"num_convs=0 needs channels == in_channels ({c_in})")
        self.channels = channels
        self.convs = nn.Sequential(
            *(
                ConvBNReLU(c_in if i == 0 else channels, channels, kernel_size, dilation=dilation)
                for i in range(num_convs)
            )
        )
        self.conv_cat = ConvBNReLU(c_in + channels, channels, kernel_size) if concat_input else None

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out
