"""BiSeNetV1 backbone (Yu et al., ECCV 2018), registered in timm as ``bisenetv1_r18`` /
``bisenetv1_r50`` / ``bisenetv1_r101``.

MMSegmentation's ``BiSeNetV1``: a spatial path (three strided convs, 1/8), a context path on a
ResNet (attention refinement of its 1/16 and 1/32 stages plus a global-pool branch) and a feature
fusion module. Its ``backbone_cfg`` is MMSegmentation's plain ``ResNet`` (7x7 stem, no
dilation: ``deep_stem`` is off although the ``-in1k-pre`` configs name ``resnet18_v1c``
weights), i.e. timm's ``resnet18``, built here with ``features_only``.

Outputs, as MMSegmentation's backbone returns them (all in training and eval):
``[fused (out_channels, 1/8), context 1/8 (context_channels[0]), context 1/16
(context_channels[0])]``; the last two feed the auxiliary heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.realtime_layers import (
    AttentionRefinement,
    ConvBNAct,
    FeatureBackbone,
    build_feature_backbone,
    default_cfg,
)

__all__ = ["BiSeNetV1"]


class SpatialPath(nn.Module):
    """7x7/2, 3x3/2, 3x3/2 then 1x1 ConvBNReLU: ``(N, 3, H, W)`` -> ``(N, C[3], H/8, W/8)``."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.layer1 = ConvBNAct(in_channels, channels[0], 7, stride=2)
        self.layer2 = ConvBNAct(channels[0], channels[1], 3, stride=2)
        self.layer3 = ConvBNAct(channels[1], channels[2], 3, stride=2)
        self.layer4 = ConvBNAct(channels[2], channels[3], 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ContextPath(nn.Module):
    """A timm ResNet; its 1/32 map (+ a global-pool branch) and 1/16 map are refined (ARM),
    upsampled (nearest) and summed top-down.

    ``(N, 3, H, W)`` -> ``(context 1/8, context 1/16)``, both ``context_channels[0]`` wide.
    """

    def __init__(
        self, backbone: str, backbone_kwargs: dict[str, Any], context_channels: Sequence[int]
    ) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            backbone, features_only=True, out_indices=(1, 2, 3, 4), **backbone_kwargs
        )
        c0, c16, c32 = context_channels
        self.arm16 = AttentionRefinement(c16, c0)
        self.arm32 = AttentionRefinement(c32, c0)
        self.conv_head32 = ConvBNAct(c0, c0, 3)
        self.conv_head16 = ConvBNAct(c0, c0, 3)
        self.gap_conv = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(c32, c0, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, x_8, x_16, x_32 = self.backbone(x)
        x_32 = self.arm32(x_32) + self.gap_conv(x_32)
        up_32 = self.conv_head32(F.interpolate(x_32, size=x_16.shape[2:], mode="nearest"))
        x_16 = self.arm16(x_16) + up_32
        up_16 = self.conv_head16(F.interpolate(x_16, size=x_8.shape[2:], mode="nearest"))
        return up_16, up_32


class FeatureFusion(nn.Module):
    """Concatenate, 1x1 ConvBNReLU, then add a channel-attention-weighted copy of itself."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.conv_atten = nn.Sequential(ConvBNAct(out_channels, out_channels, 1), nn.Sigmoid())

    def forward(self, x_sp: Tensor, x_cp: Tensor) -> Tensor:
        x = self.conv1(torch.cat([x_sp, x_cp], dim=1))
        return x * self.conv_atten(self.gap(x)) + x


class BiSeNetV1(FeatureBackbone):
    """BiSeNetV1: spatial path + ResNet context path + feature fusion.

    Args:
        backbone: timm name of the context path's ResNet (``resnet18``: MMSeg's ``ResNet``
            depth 18 with a 7x7 stem).
        backbone_kwargs: passed to ``timm.create_model`` (e.g. ``channels`` to narrow it).
        spatial_channels: widths of the spatial path's four convs.
        context_channels: (ARM output, ResNet 1/16 width, ResNet 1/32 width).
        out_channels: width of the fused 1/8 output.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_kwargs: dict[str, Any] | None = None,
        in_chans: int = 3,
        spatial_channels: Sequence[int] = (64, 64, 64, 128),
        context_channels: Sequence[int] = (128, 256, 512),
        out_channels: int = 256,
        num_classes: int = 0,
        global_pool: str = "",
    ) -> None:
        super().__init__()
        kwargs = {"in_chans": in_chans, **dict(backbone_kwargs or {})}
        self.context_path = ContextPath(backbone, kwargs, context_channels)
        self.spatial_path = SpatialPath(in_chans, spatial_channels)
        self.ffm = FeatureFusion(spatial_channels[3] + context_channels[0], out_channels)
        self.num_classes = 0
        c0 = context_channels[0]
        self.feature_info = [
            {"num_chs": out_channels, "reduction": 8, "module": "ffm"},
            {"num_chs": c0, "reduction": 8, "module": "context_path.conv_head16"},
            {"num_chs": c0, "reduction": 16, "module": "context_path.conv_head32"},
        ]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> ``[fused 1/8, context 1/8, context 1/16]``."""
        context_8, context_16 = self.context_path(x)
        return [self.ffm(self.spatial_path(x), context_8), context_8, context_16]


default_cfgs = generate_default_cfgs(
    {
        f"bisenetv1_{d}": default_cfg(first_conv="spatial_path.layer1.conv")
        for d in ("r18", "r50", "r101")
    }
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> BiSeNetV1:
    return build_feature_backbone(BiSeNetV1, variant, pretrained, 3, **kwargs)


@register_model
def bisenetv1_r18(pretrained: bool = False, **kwargs: Any) -> BiSeNetV1:
    """MMSeg's ``bisenetv1_r18-d32``: ResNet-18 context path, 128/256/512 context widths."""
    return _create("bisenetv1_r18", pretrained, **{"backbone": "resnet18", **kwargs})


@register_model
def bisenetv1_r50(pretrained: bool = False, **kwargs: Any) -> BiSeNetV1:
    """MMSeg's ``bisenetv1_r50-d32``: ResNet-50 context path, 512/1024/2048, 1024 out."""
    arch = {
        "backbone": "resnet50",
        "context_channels": (512, 1024, 2048),
        "spatial_channels": (256, 256, 256, 512),
        "out_channels": 1024,
    }
    return _create("bisenetv1_r50", pretrained, **{**arch, **kwargs})


@register_model
def bisenetv1_r101(pretrained: bool = False, **kwargs: Any) -> BiSeNetV1:
    """MMSeg's ``bisenetv1_r101-d32``: ResNet-101 context path, 512/1024/2048, 1024 out."""
    arch = {
        "backbone": "resnet101",
        "context_channels": (512, 1024, 2048),
        "spatial_channels": (256, 256, 256, 512),
        "out_channels": 1024,
    }
    return _create("bisenetv1_r101", pretrained, **{**arch, **kwargs})
