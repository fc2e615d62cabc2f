"""Fast-SCNN (Poudel et al., BMVC 2019), registered in timm as ``fast_scnn``.

MMSegmentation's ``FastSCNN`` backbone: a learning-to-downsample stem (stride 8), a global
feature extractor (MobileNetV2 blocks to stride 32 and a pyramid pooling module) and a feature
fusion module adding both branches at stride 8. Module names follow MMSegmentation's, so its
checkpoints convert by renaming.

``timm.create_model("fast_scnn", features_only=True)`` returns, ordered by stride::

    [higher-resolution (64, /8), fused (128, /8), lower-resolution (128, /32)]

(MMSegmentation's ``out_indices`` order is higher, lower, fused.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.lightweight_layers import (
    ConvNormAct,
    DepthwiseSeparableConv,
    FeatureIntermediatesMixin,
    InvertedResidual,
    PyramidPooling,
    build_seg_backbone,
    seg_backbone_cfg,
)

__all__ = ["FastSCNN"]


class LearningToDownsample(nn.Sequential):
    """3x3 conv (stride 2) and two depth-wise separable convs (stride 2 each): ``/8``.
    The depth-wise convs have no activation (MMSegmentation's ``dw_act_cfg=None``)."""

    def __init__(self, in_channels: int, dw_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, dw_channels[0], 3, stride=2)
        self.dsconv1 = DepthwiseSeparableConv(
            dw_channels[0], dw_channels[1], 3, stride=2, dw_activation=None
        )
        self.dsconv2 = DepthwiseSeparableConv(
            dw_channels[1], out_channels, 3, stride=2, dw_activation=None
        )


class GlobalFeatureExtractor(nn.Module):
    """Three groups of inverted residuals (ReLU), pyramid pooling (``C/4`` per scale),
    concatenation and a 3x3 ConvNormAct to ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        block_channels: Sequence[int],
        out_channels: int,
        expand_ratio: int,
        num_blocks: Sequence[int],
        strides: Sequence[int],
        pool_scales: Sequence[int],
        align_corners: bool,
    ) -> None:
        super().__init__()
        prev = in_channels
        for i, (c, n, s) in enumerate(zip(block_channels, num_blocks, strides, strict=True)):
            blocks = [
                InvertedResidual(
                    prev if j == 0 else c, c, s if j == 0 else 1, expand_ratio, 1, "relu"
                )
                for j in range(n)
            ]
            self.add_module(f"bottleneck{i + 1}", nn.Sequential(*blocks))
            prev = c
        self.ppm = PyramidPooling(pool_scales, prev, prev // 4, align_corners)
        self.out = ConvNormAct(prev * 2, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bottleneck3(self.bottleneck2(self.bottleneck1(x)))
        return self.out(torch.cat([x, *self.ppm(x)], dim=1))


class FeatureFusionModule(nn.Module):
    """Upsample the low-resolution map, 3x3 grouped ConvNormAct and a linear 1x1 on it, a linear
    1x1 on the high-resolution map, add, ReLU."""

    def __init__(
        self, higher_channels: int, lower_channels: int, out_channels: int, align_corners: bool
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.dwconv = ConvNormAct(lower_channels, out_channels, 3, groups=out_channels)
        self.conv_lower_res = ConvNormAct(out_channels, out_channels, 1, activation=None)
        self.conv_higher_res = ConvNormAct(higher_channels, out_channels, 1, activation=None)

    def forward(self, higher: Tensor, lower: Tensor) -> Tensor:
        lower = F.interpolate(
            lower, size=higher.shape[2:], mode="bilinear", align_corners=self.align_corners
        )
        lower = self.conv_lower_res(self.dwconv(lower))
        return F.relu(self.conv_higher_res(higher) + lower)


class FastSCNN(FeatureIntermediatesMixin, nn.Module):
    """Fast-SCNN backbone. Input ``(N, in_chans, H, W)``; ``features`` returns
    ``[(N, global_in_channels, H/8, W/8), (N, fusion_out_channels, H/8, W/8),
    (N, global_out_channels, H/32, W/32)]`` (sizes rounded up by the strided convs)."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        downsample_dw_channels: Sequence[int] = (32, 48),
        global_in_channels: int = 64,
        global_block_channels: Sequence[int] = (64, 96, 128),
        global_block_strides: Sequence[int] = (2, 2, 1),
        global_num_blocks: Sequence[int] = (3, 3, 3),
        global_out_channels: int = 128,
        fusion_out_channels: int = 128,
        expand_ratio: int = 6,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("fast_scnn is a segmentation backbone without a classifier")
        self.num_classes = 0
        self.learning_to_downsample = LearningToDownsample(
            in_chans, downsample_dw_channels, global_in_channels
        )
        self.global_feature_extractor = GlobalFeatureExtractor(
            global_in_channels,
            global_block_channels,
            global_out_channels,
            expand_ratio,
            global_num_blocks,
            global_block_strides,
            pool_scales,
            align_corners,
        )
        self.feature_fusion = FeatureFusionModule(
            global_in_channels, global_out_channels, fusion_out_channels, align_corners
        )
        lower_stride = 8
        for s in global_block_strides:
            lower_stride *= s
        self.feature_info = [
            {"num_chs": global_in_channels, "reduction": 8, "module": "learning_to_downsample"},
            {"num_chs": fusion_out_channels, "reduction": 8, "module": "feature_fusion"},
            {
                "num_chs": global_out_channels,
                "reduction": lower_stride,
                "module": "global_feature_extractor",
            },
        ]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> list[Tensor]:
        higher = self.learning_to_downsample(x)
        lower = self.global_feature_extractor(higher)
        return [higher, self.feature_fusion(higher, lower), lower]


default_cfgs = generate_default_cfgs({"fast_scnn": seg_backbone_cfg()})


@register_model
def fast_scnn(pretrained: bool = False, **kwargs: Any) -> FastSCNN:
    """Fast-SCNN as in MMSegmentation's ``fast_scnn_8xb4-160k_cityscapes-512x1024``."""
    return build_seg_backbone(FastSCNN, "fast_scnn", pretrained, (0, 1, 2), **kwargs)
