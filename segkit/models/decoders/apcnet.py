"""APCNet (He et al., Adaptive Pyramid Context Network for Semantic Segmentation, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU
from segkit.models.ops.adaptive_pool import adaptive_avg_pool2d


class ACM(nn.Module):
    """Adaptive context module: every position weighs the ``s x s`` pooled region features by
    sigmoid affinities predicted from its own (globally conditioned) feature.

    Shapes: ``(N, in_channels, H, W) -> (N, channels, H, W)``.
    """

    def __init__(
        self, pool_scale: int, in_channels: int, channels: int, fusion: bool = True
    ) -> None:
        super().__init__()
        self.pool_scale = pool_scale
        self.pooled_redu_conv = ConvBNReLU(in_channels, channels)
        self.input_redu_conv = ConvBNReLU(in_channels, channels)
        self.global_info = ConvBNReLU(channels, channels)
        self.gla = nn.Conv2d(channels, pool_scale**2, 1)
        self.residual_conv = ConvBNReLU(channels, channels)
        self.fusion_conv = ConvBNReLU(channels, channels) if fusion else None

    def forward(self, x: Tensor) -> Tensor:
        regions = self.pooled_redu_conv(adaptive_avg_pool2d(x, self.pool_scale))
        regions = regions.flatten(2).transpose(1, 2)  # (N, s*s, C)
        x = self.input_redu_conv(x)
        n, c, h, w = x.shape
        glob = self.global_info(F.adaptive_avg_pool2d(x, 1))
        affinity = torch.sigmoid(self.gla(x + glob).flatten(2).transpose(1, 2))  # (N, HW, s*s)
        z = torch.matmul(affinity, regions).transpose(1, 2).reshape(n, c, h, w)
        z = F.relu(self.residual_conv(z) + x)
        return self.fusion_conv(z) if self.fusion_conv is not None else z


class APCDecoder(nn.Module):
    """ACMs at ``pool_scales`` on ``features[in_index]``, concatenated with it and fused by a
    3x3 ConvBNReLU (MMSegmentation's ``APCHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        fusion: bool = True,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.acm_modules = nn.ModuleList(ACM(s, c_in, channels, fusion) for s in pool_scales)
        self.bottleneck = ConvBNReLU(c_in + len(pool_scales) * channels, channels, 3)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        return self.bottleneck(torch.cat([x, *(acm(x) for acm in self.acm_modules)], dim=1))
