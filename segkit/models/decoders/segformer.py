"""SegFormer's all-MLP decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class SegFormerDecoder(nn.Module):
    """Projects every encoder stage to ``channels`` (1x1 conv), upsamples all to the finest
    stride, concatenates and fuses them with a 1x1 conv.

    Output: ``(N, channels, H / in_strides[in_index[0]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        in_index: Sequence[int] = (0, 1, 2, 3),
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]]
        self.convs = nn.ModuleList(ConvBNReLU(in_channels[i], channels, 1) for i in self.in_index)
        self.fusion_conv = ConvBNReLU(channels * len(self.in_index), channels, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        outs = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False)
            if x.shape[2:] != size
            else conv(x)
            for conv, x in zip(self.convs, inputs)
        ]
        return self.fusion_conv(torch.cat(outs, dim=1))
