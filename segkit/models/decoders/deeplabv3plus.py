"""DeepLabV3+: atrous spatial pyramid pooling on the deepest map, fused with a low-level skip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU, SeparableConvBNReLU


class ASPP(nn.Module):
    """Image pooling + 1x1 conv + separable 3x3 convs at ``dilations[1:]``, concatenated and
    fused by a 3x3 conv to ``channels``."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        dilations: Sequence[int] = (1, 12, 24, 36),
        separable: bool = True,
    ) -> None:
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_channels, channels))
        branches: list[nn.Module] = []
        for d in dilations:
            if d == 1:
                branches.append(ConvBNReLU(in_channels, channels, 1))
            elif separable:
                branches.append(SeparableConvBNReLU(in_channels, channels, 3, dilation=d))
            else:
                branches.append(ConvBNReLU(in_channels, channels, 3, dilation=d))
        self.branches = nn.ModuleList(branches)
        self.bottleneck = ConvBNReLU(channels * (len(dilations) + 1), channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        return self.bottleneck(torch.cat([pooled, *(b(x) for b in self.branches)], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on ``features[in_index[1]]``, upsampled and concatenated with a 48-channel projection
    of ``features[in_index[0]]``, refined by two separable 3x3 convs.

    Output: ``(N, channels, H / in_strides[in_index[0]], W / ...)`` (stride 4 for a ResNet).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: Sequence[int] = (0, 3),
        dilations: Sequence[int] = (1, 12, 24, 36),
        skip_channels: int = 48,
    ) -> None:
        super().__init__()
        low, high = in_index
        self.in_index = (low, high)
        self.channels = channels
        self.output_stride = in_strides[low]
        self.aspp = ASPP(in_channels[high], channels, dilations)
        self.skip = ConvBNReLU(in_channels[low], skip_channels, 1)
        self.fuse = nn.Sequential(
            SeparableConvBNReLU(channels + skip_channels, channels, 3),
            SeparableConvBNReLU(channels, channels, 3),
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        low, high = (features[i] for i in self.in_index)
        x = self.aspp(high)
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, self.skip(low)], dim=1))
