"""DMNet (He et al., Dynamic Multi-scale Filters for Semantic Segmentation, ICCV 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU
from segkit.models.ops.adaptive_pool import adaptive_avg_pool2d


class DCM(nn.Module):
    """Dynamic convolutional module: a ``k x k`` depth-wise filter per image and channel,
    generated from the map pooled to ``k x k``, applied to the reduced map ("same" padding;
    the extra row/column of an even ``k`` goes on top/left), then BN + ReLU.

    Shapes: ``(N, in_channels, H, W) -> (N, channels, H, W)``.
    """

    def __init__(
        self, filter_size: int, in_channels: int, channels: int, fusion: bool = False
    ) -> None:
        super().__init__()
        self.filter_size = filter_size
        self.filter_gen_conv = nn.Conv2d(in_channels, channels, 1)
        self.input_redu_conv = ConvBNReLU(in_channels, channels)
        self.norm = nn.BatchNorm2d(channels)
        self.activate = nn.ReLU(inplace=True)
        self.fusion_conv = ConvBNReLU(channels, channels) if fusion else None

    def forward(self, x: Tensor) -> Tensor:
        k = self.filter_size
        filters = self.filter_gen_conv(adaptive_avg_pool2d(x, k))  # (N, C, k, k)
        x = self.input_redu_conv(x)
        n, c, h, w = x.shape
        pad = (k - 1) // 2
        extra = (k - 1) % 2  # even k: one more on the left/top
        x = F.pad(x.reshape(1, n * c, h, w), (pad + extra, pad, pad + extra, pad))
        out = F.conv2d(x, filters.reshape(n * c, 1, k, k), groups=n * c).view(n, c, h, w)
        out = self.activate(self.norm(out))
        return self.fusion_conv(out) if self.fusion_conv is not None else out


class DMDecoder(nn.Module):
    """DCMs with ``filter_sizes`` on ``features[in_index]``, concatenated with it and fused by
    a 3x3 ConvBNReLU (MMSegmentation's ``DMHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        filter_sizes: Sequence[int] = (1, 3, 5, 7),
        fusion: bool = False,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.dcm_modules = nn.ModuleList(DCM(k, c_in, channels, fusion) for k in filter_sizes)
        self.bottleneck = ConvBNReLU(c_in + len(filter_sizes) * channels, channels, 3)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        return self.bottleneck(torch.cat([x, *(dcm(x) for dcm in self.dcm_modules)], dim=1))
