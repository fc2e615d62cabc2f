"""Lite R-ASPP decoder (Howard et al., "Searching for MobileNetV3", ICCV 2019), as
MMSegmentation's ``LRASPPHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.lightweight_layers import ConvNormAct


class LRASPPDecoder(nn.Module):
    """A 1x1 ConvNormAct on the deepest map gated by a sigmoid of its large-window average
    pooling (49x49, stride 16x20, upsampled back), a 1x1 conv, then for each shallower input
    (deep to shallow) upsampling, concatenation with its 1x1 projection to ``branch_channels[i]``
    and a 1x1 ConvNormAct.

    The pooling window is MMSegmentation's 49x49, clipped to the map size on maps smaller than
    that (where MMSegmentation raises an error), so any input size works. ``norm_eps``: the
    BatchNorm epsilon (MMSegmentation's LR-ASPP configs use 1e-3).

    Output: ``(N, channels, H / in_strides[in_index[0]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 128,
        in_index: Sequence[int] = (0, 1, 2),
        branch_channels: Sequence[int] = (32, 64),
        pool_kernel: Sequence[int] = (49, 49),
        pool_stride: Sequence[int] = (16, 20),
        align_corners: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(branch_channels) != len(in_index) - 1:
            raise ValueError("need one branch width per input but the deepest")
        self.in_index = list(in_index)
        self.channels = channels
        self.output_stride = in_strides[in_index[0]]
        self.align_corners = align_corners
        self.pool_kernel = tuple(pool_kernel)
        self.pool_stride = tuple(pool_stride)
        c_in = [in_channels[i] for i in in_index]
        self.convs = nn.Sequential()
        self.conv_ups = nn.Sequential()
        for i, c in enumerate(branch_channels):
            self.convs.add_module(f"conv{i}", nn.Conv2d(c_in[i], c, 1, bias=False))
            self.conv_ups.add_module(
                f"conv_up{i}", ConvNormAct(channels + c, channels, 1, eps=norm_eps)
            )
        self.conv_up_input = nn.Conv2d(channels, channels, 1)
        self.aspp_conv = ConvNormAct(c_in[-1], channels, 1, eps=norm_eps)
        self.image_pool = ConvNormAct(
            c_in[-1], channels, 1, norm=False, activation="sigmoid", bias=False
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        x = inputs[-1]
        kernel = tuple(min(k, s) for k, s in zip(self.pool_kernel, x.shape[2:], strict=True))
        gate = self.image_pool(F.avg_pool2d(x, kernel, self.pool_stride))
        gate = F.interpolate(
            gate, size=x.shape[2:], mode="bilinear", align_corners=self.align_corners
        )
        x = self.conv_up_input(self.aspp_conv(x) * gate)
        for i in range(len(inputs) - 2, -1, -1):
            x = F.interpolate(
                x, size=inputs[i].shape[2:], mode="bilinear", align_corners=self.align_corners
            )
            x = self.conv_ups[i](torch.cat([x, self.convs[i](inputs[i])], dim=1))
        return x
