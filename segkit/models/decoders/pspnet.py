"""PSPNet: a pyramid pooling module (PPM) on the deepest encoder map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU
from segkit.models.ops.adaptive_pool import AdaptiveAvgPool2d


class PPM(nn.ModuleList):
    """Pyramid pooling: for each scale ``s``, adaptive average pooling to ``s x s`` and a 1x1
    ConvBNReLU to ``channels``, upsampled (bilinear) back to the input size.

    ``(N, in_channels, h, w)`` -> ``len(pool_scales)`` maps ``(N, channels, h, w)``. Item ``i`` is
    ``Sequential(AdaptiveAvgPool2d, ConvBNReLU)``, the layout of MMSegmentation's ``PPM``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__(
            nn.Sequential(AdaptiveAvgPool2d(s), ConvBNReLU(in_channels, channels, 1))
            for s in pool_scales
        )
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> list[Tensor]:
        size = x.shape[2:]
        return [
            F.interpolate(m(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for m in self
        ]


class PSPDecoder(nn.Module):
    """PPM on ``features[in_index]``, concatenated with its input and fused by a 3x3 ConvBNReLU.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)`` (stride 8 for a ResNet-D8).
    Submodules ``psp_modules`` and ``bottleneck`` are named as in MMSegmentation's ``PSPHead``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.psp_modules = PPM(c_in, channels, pool_scales, align_corners)
        self.bottleneck = ConvBNReLU(c_in + len(pool_scales) * channels, channels, 3)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))
