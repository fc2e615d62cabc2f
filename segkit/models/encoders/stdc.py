"""STDC backbones with their context path (Fan et al., "Rethinking BiSeNet For Real-time
Semantic Segmentation", CVPR 2021), registered in timm as ``stdc1`` and ``stdc2``.

MMSegmentation's ``STDCContextPathNet`` on an ``STDCNet`` (``bottleneck_type='cat'``): two
strided 3x3 convs, then three stages of Short-Term Dense Concatenate modules (1/8, 1/16, 1/32);
attention refinement of the 1/32 and 1/16 stages with a global-pool branch (top-down, nearest
upsampling) and a feature fusion module with the 1/8 stage.

Outputs: MMSegmentation's four backbone outputs ``(stage 1/8, context 1/16, context 1/8,
fused 1/8)``, ordered by stride as timm's ``feature_info`` requires: ``[stage 1/8 (channels[2]),
context 1/8 (out_channels), fused 1/8 (ffm out), context 1/16 (out_channels)]``. The 1/8 stage
feeds the detail head (training only), the contexts the auxiliary heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

__all__ = ["STDCContextPathNet"]

_ARCHS = {
    "STDCNet1": ((2, 1), (2, 1), (2, 1)),
    "STDCNet2": ((2, 1, 1, 1), (2, 1, 1, 1, 1), (2, 1, 1)),
}


class STDCModule(nn.Module):
    """Short-Term Dense Concatenate module ('cat' fusion): a 1x1 conv to ``out / 2`` then
    ``num_convs - 1`` 3x3 convs halving the width; all outputs concatenated to ``out``
    channels. With stride 2 a depth-wise 3x3/2 ConvBN follows the first conv on the main path
    and the first output is average-pooled."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, num_convs: int = 4):
        super().__init__()
        self.layers = nn.ModuleList([ConvBNAct(in_channels, out_channels // 2, 1)])
        half = out_channels // 2
        if stride == 2:
            self.downsample = ConvBNAct(half, half, 3, stride=2, groups=half, act=False)
            self.skip = nn.AvgPool2d(3, stride=2, padding=1)
        else:
            self.downsample = None
        for i in range(1, num_convs):
            factor = 2 ** (i + 1) if i != num_convs - 1 else 2**i
            self.layers.append(ConvBNAct(out_channels // 2**i, out_channels // factor, 3))

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.layers[0](x)
        y = x0 if self.downsample is None else self.downsample(x0)
        outs = [x0 if self.downsample is None else self.skip(x0)]
        for layer in self.layers[1:]:
            y = layer(y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class STDCNet(nn.Module):
    """Two strided ConvBNReLU, then three STDC stages; returns the 1/8, 1/16, 1/32 maps."""

    def __init__(
        self,
        stdc_type: str = "STDCNet1",
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 256, 512, 1024),
        num_convs: int = 4,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = [
            ConvBNAct(in_channels, channels[0], 3, stride=2),
            ConvBNAct(channels[0], channels[1], 3, stride=2),
        ]
        for i, strides in enumerate(_ARCHS[stdc_type]):
            c_in, c_out = channels[i + 1], channels[i + 2]
            stages.append(
                nn.Sequential(
                    *(
                        STDCModule(c_in if j == 0 else c_out, c_out, s, num_convs)
                        for j, s in enumerate(strides)
                    )
                )
            )
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[2:]


class FeatureFusion(nn.Module):
    """Concatenate, 1x1 ConvBNReLU, then add a copy rescaled by squeeze-excitation attention
    (two bias-free 1x1 convs, reduction ``scale_factor``, no norm)."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int = 4) -> None:
        super().__init__()
        mid = out_channels // scale_factor
        self.conv0 = ConvBNAct(in_channels, out_channels, 1)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvBNAct(out_channels, mid, 1, norm=False, bias=False),
            ConvBNAct(mid, out_channels, 1, norm=False, act=False, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        x = self.conv0(torch.cat([spatial, context], dim=1))
        return x * self.attention(x) + x


class STDCContextPathNet(FeatureBackbone):
    """STDCNet + context path + feature fusion.

    Args:
        stdc_type: ``STDCNet1`` or ``STDCNet2`` (STDC module counts per stage).
        channels: widths of the two stem convs and the three stages.
        num_convs: convs per STDC module.
        last_in_channels: widths of the 1/32 and 1/16 stages (refined by ARMs).
        out_channels: context path width.
        ffm_channels: (FFM input = channels[2] + out_channels, FFM output); ``ffm_scale``: its
            attention reduction.
    """

    def __init__(
        self,
        stdc_type: str = "STDCNet1",
        in_chans: int = 3,
        channels: Sequence[int] = (32, 64, 256, 512, 1024),
        num_convs: int = 4,
        last_in_channels: Sequence[int] = (1024, 512),
        out_channels: int = 128,
        ffm_channels: Sequence[int] = (384, 256),
        ffm_scale: int = 4,
        num_classes: int = 0,
        global_pool: str = "",
    ) -> None:
        super().__init__()
        self.num_classes = 0
        self.backbone = STDCNet(stdc_type, in_chans, channels, num_convs)
        self.arms = nn.ModuleList(AttentionRefinement(c, out_channels) for c in last_in_channels)
        self.convs = nn.ModuleList(
            ConvBNAct(out_channels, out_channels, 3) for _ in last_in_channels
        )
        self.conv_avg = ConvBNAct(last_in_channels[0], out_channels, 1)
        self.ffm = FeatureFusion(ffm_channels[0], ffm_channels[1], ffm_scale)
        self.feature_info = [
            {"num_chs": channels[2], "reduction": 8, "module": "backbone.stages.2"},
            {"num_chs": out_channels, "reduction": 8, "module": "convs.1"},
            {"num_chs": ffm_channels[1], "reduction": 8, "module": "ffm"},
            {"num_chs": out_channels, "reduction": 16, "module": "convs.0"},
        ]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> ``[stage 1/8, context 1/8, fused 1/8, context 1/16]``."""
        outs = self.backbone(x)
        up = self.conv_avg(F.adaptive_avg_pool2d(outs[-1], 1))
        up = F.interpolate(up, size=outs[-1].shape[2:], mode="nearest")
        contexts = []
        for i, (arm, conv) in enumerate(zip(self.arms, self.convs, strict=True)):
            refined = arm(outs[-1 - i]) + up
            up = conv(F.interpolate(refined, size=outs[-2 - i].shape[2:], mode="nearest"))
            contexts.append(up)
        fused = self.ffm(outs[0], contexts[1])
        return [outs[0], contexts[1], fused, contexts[0]]


default_cfgs = generate_default_cfgs(
    {n: default_cfg(first_conv="backbone.stages.0.conv") for n in ("stdc1", "stdc2")}
)


@register_model
def stdc1(pretrained: bool = False, **kwargs: Any) -> STDCContextPathNet:
    """MMSeg's STDC1 (``STDCNet1``: 2, 2, 2 modules per stage) with its context path."""
    kwargs = {"stdc_type": "STDCNet1", **kwargs}
    return build_feature_backbone(STDCContextPathNet, "stdc1", pretrained, 4, **kwargs)


@register_model
def stdc2(pretrained: bool = False, **kwargs: Any) -> STDCContextPathNet:
    """MMSeg's STDC2 (``STDCNet2``: 4, 5, 3 modules per stage) with its context path."""
    kwargs = {"stdc_type": "STDCNet2", **kwargs}
    return build_feature_backbone(STDCContextPathNet, "stdc2", pretrained, 4, **kwargs)
