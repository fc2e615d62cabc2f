"""ICNet's cascade feature fusion neck, as MMSegmentation's ``ICNeck``."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.lightweight_layers import ConvNormAct


class CascadeFeatureFusion(nn.Module):
    """Upsample the low-resolution map to the high-resolution one, a dilated 3x3 ConvNormAct on
    it, a 1x1 ConvNormAct on the high-resolution map, add and ReLU.

    Returns ``(fused, low)``: both ``(N, out_channels, h_high, w_high)``; ``low`` (the
    projected low-resolution map) is what MMSegmentation's auxiliary heads classify.
    """

    def __init__(
        self, low_channels: int, high_channels: int, out_channels: int, align_corners: bool
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.conv_low = ConvNormAct(low_channels, out_channels, 3, dilation=2)
        self.conv_high = ConvNormAct(high_channels, out_channels, 1)

    def forward(self, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        low = F.interpolate(
            low, size=high.shape[2:], mode="bilinear", align_corners=self.align_corners
        )
        low = self.conv_low(low)
        return F.relu(low + self.conv_high(high)), low


class ICNeck(nn.Module):
    """Fuses ICNet's three branches (strides 8, 16, 32) from coarse to fine.

    Input: ``[sub1 (/8), sub2 (/16), sub4 (/32)]``. Output, all ``out_channels`` wide:
    ``[low_24 (/16), low_12 (/8), fused_12 (/8)]`` (MMSegmentation's order: the last is
    decoded, the first two feed auxiliary heads).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_channels: int = 128,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"ICNeck takes 3 maps, got {len(in_channels)}")
        self.cff_24 = CascadeFeatureFusion(
            in_channels[2], in_channels[1], out_channels, align_corners
        )
        self.cff_12 = CascadeFeatureFusion(
            out_channels, in_channels[0], out_channels, align_corners
        )
        self.channels = [out_channels] * 3
        self.strides = [in_strides[1], in_strides[0], in_strides[0]]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        sub1, sub2, sub4 = features
        fused_24, low_24 = self.cff_24(sub4, sub2)
        fused_12, low_12 = self.cff_12(fused_24, sub1)
        return [low_24, low_12, fused_12]
