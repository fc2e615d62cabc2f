"""UPerNet: a pyramid pooling module on the deepest map, topped by an FPN over all the others."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.pspnet import PPM
from segkit.models.layers import ConvBNReLU


class UPerNetDecoder(nn.Module):
    """MMSegmentation's ``UPerHead`` for any encoder pyramid (ResNet, Swin, ConvNeXt, ViT+neck).

    The deepest selected map goes through a PPM and a 3x3 ``bottleneck``; every other map gets a
    1x1 lateral conv. Top-down, each level adds the bilinearly upsampled level above it; each
    non-top level is refined by a 3x3 ``fpn_convs`` conv. All levels are upsampled to the finest
    one, concatenated and fused by the 3x3 ``fpn_bottleneck``. Every conv is ConvBNReLU; the
    submodule names are MMSegmentation's, so its checkpoints convert by prefix.

    Args:
        in_channels, in_strides: of every encoder (or neck) output.
        channels: width of every lateral / FPN / fused map.
        in_index: which outputs to use, finest first (MMSeg's ``in_index``).
        pool_scales: PPM pooling sizes.
        align_corners: of every bilinear resize (MMSegmentation's configs: False).

    Output: ``(N, channels, H / s, W / s)`` with ``s = in_strides[in_index[0]]`` (4 for ResNet).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: Sequence[int] = (0, 1, 2, 3),
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        widths = [in_channels[i] for i in self.in_index]
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]]
        self.align_corners = align_corners
        self.psp_modules = PPM(widths[-1], channels, pool_scales, align_corners)
        self.bottleneck = ConvBNReLU(widths[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in widths[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in widths[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(widths) * channels, channels, 3)

    def _resize(self, x: Tensor, size: Sequence[int]) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        top = inputs[-1]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs, strict=False)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + self._resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=False)]
        outs.append(laterals[-1])
        size = outs[0].shape[2:]
        outs = [outs[0], *(self._resize(x, size) for x in outs[1:])]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))
