"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation",
TIP 2020), registered in timm as ``cgnet_m3n21``.

MMSegmentation's ``CGNet`` backbone: a 3-conv stem (stride 2), then two levels of Context
Guided blocks (local 3x3 + dilated surrounding depth-wise features, joint BN-PReLU, global
context reweighting), with the input image injected by average pooling. M3N21 is the paper's
M=3, N=21 variant. Module names follow MMSegmentation's, so its checkpoints convert by renaming.

``timm.create_model("cgnet_m3n21", features_only=True)`` returns the three level outputs
``[(N, 32+3, H/2, W/2), (N, 2*64+3, H/4, W/4), (N, 2*128, H/8, W/8)]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.lightweight_layers import (
    ConvNormAct,
    FeatureIntermediatesMixin,
    build_seg_backbone,
    seg_backbone_cfg,
)

__all__ = ["CGNet"]


class GlobalContextExtractor(nn.Module):
    """Squeeze-and-excitation style channel reweighting with two linear layers."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class ContextGuidedBlock(nn.Module):
    """1x1 (or 3x3 stride-2 when ``downsample``) ConvNormAct-PReLU to ``c`` channels, then a
    3x3 depth-wise "local" and a dilated 3x3 depth-wise "surrounding" conv, concatenated
    (``2c``), BN + PReLU, a 1x1 projection when downsampling, global context reweighting and a
    residual connection when the shape is kept. ``c = out_channels`` if ``downsample`` else
    ``out_channels // 2``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int,
        reduction: int,
        downsample: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        c = out_channels if downsample else out_channels // 2
        self.conv1x1 = ConvNormAct(
            in_channels,
            c,
            3 if downsample else 1,
            2 if downsample else 1,
            activation="prelu",
            eps=eps,
        )
        self.f_loc = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.f_sur = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(2 * c, eps=eps)
        self.act = nn.PReLU(2 * c)
        self.bottleneck = nn.Conv2d(2 * c, out_channels, 1, bias=False) if downsample else None
        self.skip_connect = not downsample
        self.f_glo = GlobalContextExtractor(out_channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1x1(x)
        out = self.act(self.bn(torch.cat([self.f_loc(out), self.f_sur(out)], dim=1)))
        if self.bottleneck is not None:
            out = self.bottleneck(out)
        out = self.f_glo(out)
        return x + out if self.skip_connect else out


class InputInjection(nn.Module):
    """``num_downsampling`` 3x3 stride-2 average poolings of the input image."""

    def __init__(self, num_downsampling: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, 2, 1) for _ in range(num_downsampling))

    def forward(self, x: Tensor) -> Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class CGNet(FeatureIntermediatesMixin, nn.Module):
    """CGNet backbone. Input ``(N, in_chans, H, W)``; ``features`` returns
    ``[(N, c0 + in_chans, H/2, W/2), (N, 2 c1 + in_chans, H/4, W/4), (N, 2 c2, H/8, W/8)]`` with
    ``(c0, c1, c2) = num_channels`` (sizes rounded up)."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        num_channels: Sequence[int] = (32, 64, 128),
        num_blocks: Sequence[int] = (3, 21),
        dilations: Sequence[int] = (2, 4),
        reductions: Sequence[int] = (8, 16),
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("CGNet is a segmentation backbone without a classifier")
        self.num_classes = 0
        c0, c1, c2 = num_channels
        self.stem = nn.ModuleList(
            ConvNormAct(
                in_chans if i == 0 else c0,
                c0,
                3,
                2 if i == 0 else 1,
                activation="prelu",
                eps=bn_eps,
            )
            for i in range(3)
        )
        self.inject_2x = InputInjection(1)
        self.inject_4x = InputInjection(2)
        ch = c0 + in_chans
        self.norm_prelu_0 = nn.Sequential(nn.BatchNorm2d(ch, eps=bn_eps), nn.PReLU(ch))
        self.level1 = nn.ModuleList(
            ContextGuidedBlock(
                ch if i == 0 else c1, c1, dilations[0], reductions[0], i == 0, bn_eps
            )
            for i in range(num_blocks[0])
        )
        ch1 = 2 * c1 + in_chans
        self.norm_prelu_1 = nn.Sequential(nn.BatchNorm2d(ch1, eps=bn_eps), nn.PReLU(ch1))
        self.level2 = nn.ModuleList(
            ContextGuidedBlock(
                ch1 if i == 0 else c2, c2, dilations[1], reductions[1], i == 0, bn_eps
            )
            for i in range(num_blocks[1])
        )
        self.norm_prelu_2 = nn.Sequential(nn.BatchNorm2d(2 * c2, eps=bn_eps), nn.PReLU(2 * c2))
        self.feature_info = [
            {"num_chs": ch, "reduction": 2, "module": "norm_prelu_0"},
            {"num_chs": ch1, "reduction": 4, "module": "norm_prelu_1"},
            {"num_chs": 2 * c2, "reduction": 8, "module": "norm_prelu_2"},
        ]
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> list[Tensor]:
        inp_2x, inp_4x = self.inject_2x(x), self.inject_4x(x)
        for layer in self.stem:
            x = layer(x)
        x = self.norm_prelu_0(torch.cat([x, inp_2x], dim=1))
        out0 = x
        for i, block in enumerate(self.level1):
            x = block(x)
            if i == 0:
                down1 = x
        x = self.norm_prelu_1(torch.cat([x, down1, inp_4x], dim=1))
        out1 = x
        for i, block in enumerate(self.level2):
            x = block(x)
            if i == 0:
                down2 = x
        x = self.norm_prelu_2(torch.cat([down2, x], dim=1))
        return [out0, out1, x]


default_cfgs = generate_default_cfgs({"cgnet_m3n21": seg_backbone_cfg(mean=(0.0, 0.0, 0.0))})


@register_model
def cgnet_m3n21(pretrained: bool = False, **kwargs: Any) -> CGNet:
    """CGNet-M3N21 as in MMSegmentation's ``cgnet_fcn_4xb8-60k_cityscapes-512x1024``."""
    return build_seg_backbone(CGNet, "cgnet_m3n21", pretrained, (0, 1, 2), **kwargs)
