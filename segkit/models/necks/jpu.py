"""Joint Pyramid Upsampling (FastFCN, Wu et al., 2019), as MMSegmentation's ``JPU`` neck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.necks.fpn import ConvNormAct


class SeparableConv(nn.Sequential):
    """Depth-wise 3x3 conv + BN (no activation), then point-wise 1x1 conv + BN + ReLU
    (MMSegmentation's ``DepthwiseSeparableConvModule`` as JPU configures it)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvNormAct(
            in_channels, in_channels, 3, norm="bn", dilation=dilation, groups=in_channels
        )
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1, norm="bn", act=True)


class JPU(nn.Module):
    """Each used level (``start_level`` to ``end_level``, exclusive) gets a 3x3 ConvBNReLU to
    ``mid_channels``; all are resized (bilinear) to the finest of them and concatenated; parallel
    separable convs at ``dilations`` turn that into ``len(dilations) * mid_channels`` channels.

    ``features`` -> the used levels but the last, unchanged, followed by the JPU map at the
    finest used stride: for a ResNet's strides 8/16/32 (512/1024/2048 channels),
    ``channels = [512, 1024, 2048]`` and ``strides = [8, 16, 8]``. Names as MMSegmentation.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        mid_channels: int = 512,
        start_level: int = 0,
        end_level: int = -1,
        dilations: Sequence[int] = (1, 2, 4, 8),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        end = len(in_channels) if end_level == -1 else end_level
        self.start_level, self.end_level = start_level, end
        self.align_corners = align_corners
        used = range(start_level, end)
        self.conv_layers = nn.ModuleList(
            nn.Sequential(ConvNormAct(in_channels[i], mid_channels, 3, norm="bn", act=True))
            for i in used
        )
        self.dilation_layers = nn.ModuleList(
            nn.Sequential(SeparableConv(len(used) * mid_channels, mid_channels, d))
            for d in dilations
        )
        self.channels = [*in_channels[start_level : end - 1], len(dilations) * mid_channels]
        self.strides = [*in_strides[start_level : end - 1], in_strides[start_level]]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        feats = [conv(features[self.start_level + i]) for i, conv in enumerate(self.conv_layers)]
        size = feats[0].shape[2:]
        feats[1:] = [
            F.interpolate(f, size=size, mode="bilinear", align_corners=self.align_corners)
            for f in feats[1:]
        ]
        feat = torch.cat(feats, dim=1)
        joint = torch.cat([layer(feat) for layer in self.dilation_layers], dim=1)
        return [*features[self.start_level : self.end_level - 1], joint]
