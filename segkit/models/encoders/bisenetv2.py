"""BiSeNetV2 backbone (Yu et al., IJCV 2021), registered in timm as ``bisenetv2``.

MMSegmentation's ``BiSeNetV2``: a wide, shallow detail branch (1/8), a narrow, deep semantic
branch (stem block, gather-and-expansion layers, context embedding; 1/32) and the bilateral
guided aggregation layer (BGA) that fuses them.

Outputs: MMSegmentation's backbone outputs (``out_indices=(0, 1, 2, 3, 4)``: BGA, semantic
stages 1-4), ordered by stride as timm's ``feature_info`` requires: ``[semantic stage 1 (1/4),
stage 2 (1/8), BGA (bga_channels, 1/8), stage 3 (1/16), stage 4 (1/32)]``; the decode head
reads level 2, the four auxiliary ("booster") heads the semantic stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.realtime_layers import (
    ConvBNAct,
    FeatureBackbone,
    build_feature_backbone,
    default_cfg,
)

__all__ = ["BiSeNetV2"]


class DetailBranch(nn.Module):
    """Three stages of 3x3 ConvBNReLU (first one strided; 2, 3, 3 convs): 1/8 output."""

    def __init__(self, channels: Sequence[int], in_channels: int = 3) -> None:
        super().__init__()
        stages = []
        for i, c in enumerate(channels):
            c_in = in_channels if i == 0 else channels[i - 1]
            convs = [ConvBNAct(c_in, c, 3, stride=2)]
            convs += [ConvBNAct(c, c, 3) for _ in range(1 if i == 0 else 2)]
            stages.append(nn.Sequential(*convs))
        self.detail_branch = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.detail_branch:
            x = stage(x)
        return x


class StemBlock(nn.Module):
    """3x3/2 conv, then a (1x1, 3x3/2) conv pair and a 3x3/2 max pool in parallel, fused by a
    3x3 conv: ``(N, 3, H, W)`` -> ``(N, out_channels, H/4, W/4)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_first = ConvBNAct(in_channels, out_channels, 3, stride=2)
        self.convs = nn.Sequential(
            ConvBNAct(out_channels, out_channels // 2, 1),
            ConvBNAct(out_channels // 2, out_channels, 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse_last = ConvBNAct(out_channels * 2, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_first(x)
        return self.fuse_last(torch.cat([self.convs(x), self.pool(x)], dim=1))


class GELayer(nn.Module):
    """Gather-and-expansion layer: 3x3 conv, depth-wise expansion by ``exp_ratio`` (two
    depth-wise convs when strided), 1x1 projection, residual (a separable-conv shortcut when
    strided), ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, exp_ratio: int = 6, stride: int = 1
    ) -> None:
        super().__init__()
        mid = in_channels * exp_ratio
        self.conv1 = ConvBNAct(in_channels, in_channels, 3)
        if stride == 1:
            self.dwconv = nn.Sequential(ConvBNAct(in_channels, mid, 3, groups=in_channels))
            self.shortcut = None
        else:
            self.dwconv = nn.Sequential(
                ConvBNAct(in_channels, mid, 3, stride=stride, groups=in_channels, act=False),
                ConvBNAct(mid, mid, 3, groups=mid),
            )
            self.shortcut = nn.Sequential(
                SeparableConv(in_channels, out_channels, stride=stride, pw_norm=True)
            )
        self.conv2 = nn.Sequential(ConvBNAct(mid, out_channels, 1, act=False))
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.dwconv(self.conv1(x)))
        return self.act(out + (x if self.shortcut is None else self.shortcut(x)))


class SeparableConv(nn.Module):
    """3x3 depth-wise ConvBN then 1x1 point-wise conv (+ BN if ``pw_norm``; a bias otherwise),
    no activations: MMCV's ``DepthwiseSeparableConvModule`` as BiSeNetV2 configures it."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, pw_norm: bool = False
    ) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNAct(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, act=False
        )
        self.pointwise_conv = ConvBNAct(in_channels, out_channels, 1, norm=pw_norm, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CEBlock(nn.Module):
    """Context embedding: global average pool + BN, 1x1 ConvBNReLU, broadcast-added to the
    input, 3x3 ConvBNReLU. Shape-preserving."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(channels))
        self.conv_gap = ConvBNAct(channels, channels, 1)
        self.conv_last = ConvBNAct(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_last(x + self.conv_gap(self.gap(x)))


class BGALayer(nn.Module):
    """Bilateral guided aggregation: each branch gates the other (sigmoid) at its own
    resolution; the two results are summed at 1/8 and fused by a 3x3 ConvBNReLU.

    ``x_d (N, C, H/8, W/8)``, ``x_s (N, C, H/32, W/32)`` -> ``(N, C, H/8, W/8)``.
    """

    def __init__(self, channels: int, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.detail_dwconv = nn.Sequential(SeparableConv(channels, channels))
        self.detail_down = nn.Sequential(
            ConvBNAct(channels, channels, 3, stride=2, act=False),
            nn.AvgPool2d(3, stride=2, padding=1),
        )
        self.semantic_conv = nn.Sequential(ConvBNAct(channels, channels, 3, act=False))
        self.semantic_dwconv = nn.Sequential(SeparableConv(channels, channels))
        self.conv = ConvBNAct(channels, channels, 3)

    def forward(self, x_d: Tensor, x_s: Tensor) -> Tensor:
        detail = self.detail_dwconv(x_d)
        semantic = F.interpolate(
            self.semantic_conv(x_s),
            size=detail.shape[2:],
            mode="bilinear",
            align_corners=self.align_corners,
        )
        fuse_1 = detail * torch.sigmoid(semantic)
        fuse_2 = self.detail_down(x_d) * torch.sigmoid(self.semantic_dwconv(x_s))
        fuse_2 = F.interpolate(
            fuse_2, size=fuse_1.shape[2:], mode="bilinear", align_corners=self.align_corners
        )
        return self.conv(fuse_1 + fuse_2)


class BiSeNetV2(FeatureBackbone):
    """BiSeNetV2: detail branch + semantic branch + BGA.

    Args:
        detail_channels: widths of the detail branch's three stages.
        semantic_channels: widths of the semantic branch's four stages (stem first).
        semantic_expansion_ratio: expansion of the gather-and-expansion layers.
        bga_channels: BGA width (= detail_channels[-1] = semantic_channels[-1]).
        align_corners: of the BGA's bilinear resizes.
    """

    def __init__(
        self,
        in_chans: int = 3,
        detail_channels: Sequence[int] = (64, 64, 128),
        semantic_channels: Sequence[int] = (16, 32, 64, 128),
        semantic_expansion_ratio: int = 6,
        bga_channels: int = 128,
        align_corners: bool = False,
        num_classes: int = 0,
        global_pool: str = "",
    ) -> None:
        super().__init__()
        self.num_classes = 0
        self.detail = DetailBranch(detail_channels, in_chans)
        self.semantic = SemanticBranch(semantic_channels, in_chans, semantic_expansion_ratio)
        self.bga = BGALayer(bga_channels, align_corners)
        info = [
            {"num_chs": c, "reduction": 4 * 2**i, "module": f"semantic.stage{i + 1}"}
            for i, c in enumerate(semantic_channels)
        ]
        info.insert(2, {"num_chs": bga_channels, "reduction": 8, "module": "bga"})
        self.feature_info = info

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> ``[semantic 1/4, semantic 1/8, BGA 1/8, semantic 1/16, 1/32]``."""
        s4, s8, s16, s32, context = self.semantic(x)
        return [s4, s8, self.bga(self.detail(x), context), s16, s32]


class SemanticBranch(nn.Module):
    """Stem block, then stages of gather-and-expansion layers (a strided one first; 2 layers,
    the last stage 4), and a context embedding block. Returns every stage's output, the
    context embedding last."""

    def __init__(self, channels: Sequence[int], in_channels: int = 3, exp_ratio: int = 6) -> None:
        super().__init__()
        self.num_stages = len(channels)
        for i, c in enumerate(channels):
            if i == 0:
                stage: nn.Module = StemBlock(in_channels, c)
            else:
                depth = 4 if i == len(channels) - 1 else 2
                layers = [GELayer(channels[i - 1], c, exp_ratio, 2)]
                layers += [GELayer(c, c, exp_ratio, 1) for _ in range(depth - 1)]
                stage = nn.Sequential(*layers)
            self.add_module(f"stage{i + 1}", stage)
        self.add_module(f"stage{len(channels)}_CEBlock", CEBlock(channels[-1]))

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"stage{i + 1}")(x)
            outs.append(x)
        outs.append(getattr(self, f"stage{self.num_stages}_CEBlock")(x))
        return outs


default_cfgs = generate_default_cfgs(
    {"bisenetv2": default_cfg(first_conv="detail.detail_branch.0.0.conv")}
)


@register_model
def bisenetv2(pretrained: bool = False, **kwargs: Any) -> BiSeNetV2:
    """MMSeg's ``BiSeNetV2`` defaults: detail (64, 64, 128), semantic (16, 32, 64, 128), BGA 128."""
    return build_feature_backbone(BiSeNetV2, "bisenetv2", pretrained, 5, **kwargs)
