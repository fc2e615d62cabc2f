"""Semantic FPN decoder (Kirillov et al., Panoptic Feature Pyramid Networks, CVPR 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class Upsample2x(nn.Module):
    """Bilinear upsampling to exactly twice the input size (MMSegmentation's ``Upsample``)."""

    def __init__(self, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        size = (x.shape[2] * 2, x.shape[3] * 2)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)


class SemanticFPNDecoder(nn.Module):
    """MMSegmentation's ``FPNHead``: each pyramid level goes through
    ``max(1, log2(stride / finest stride))`` 3x3 ConvBNReLU layers, each followed by a 2x
    bilinear upsampling for the coarser levels; the levels are summed at the finest stride
    (resized to its exact size).

    Args:
        in_channels, in_strides: of the neck (FPN) outputs.
        channels: width of every scale head.
        in_index: the levels used, finest first.

    Output: ``(N, channels, H / s, W / s)``, ``s = in_strides[in_index[0]]`` (4 for FPN on
    ResNet). Submodule ``scale_heads[i]`` keeps MMSegmentation's layout (convs at even indices).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 128,
        in_index: Sequence[int] = (0, 1, 2, 3),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        strides = [in_strides[i] for i in self.in_index]
        if min(strides) != strides[0]:
            raise ValueError(f"the first level must be the finest, got strides {strides}")
        self.channels = channels
        self.output_stride = strides[0]
        self.align_corners = align_corners
        self.scale_heads = nn.ModuleList()
        for i, stride in zip(self.in_index, strides, strict=True):
            length = max(1, int(math.log2(stride) - math.log2(strides[0])))
            layers: list[nn.Module] = []
            for k in range(length):
                layers.append(ConvBNReLU(in_channels[i] if k == 0 else channels, channels, 3))
                if stride != strides[0]:
                    layers.append(Upsample2x(align_corners))
            self.scale_heads.append(nn.Sequential(*layers))

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        out = self.scale_heads[0](inputs[0])
        for head, x in zip(self.scale_heads[1:], inputs[1:], strict=True):
            out = out + F.interpolate(
                head(x), size=out.shape[2:], mode="bilinear", align_corners=self.align_corners
            )
        return out
