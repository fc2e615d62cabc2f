"""PIDNet backbones (Xu et al., "PIDNet: A Real-time Semantic Segmentation Network Inspired
by PID Controllers", CVPR 2023), registered in timm as ``pidnet_s``, ``pidnet_m``, ``pidnet_l``.

MMSegmentation's ``PIDNet``: a 1/8 stem, then three branches: proportional (P, detail, 1/8),
integral (I, context, 1/16 -> 1/64 with a PAPPM/DAPPM) and derivative (D, boundary, 1/8). The I
branch guides P through pixel-attention fusion (PagFM) and feeds D through 3x3 convs; the Bag /
LightBag module fuses the three with the D branch as boundary attention.

Outputs (MMSegmentation returns the first two only in training; here always, it costs nothing):
``[P branch after the first fusion (2c, 1/8), D branch after the second stage (2c, 1/8),
fused output (4c, 1/8)]``, ``c`` the base width. The P and D maps feed the head's auxiliary
semantic and boundary predictions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.realtime_layers import (
    DAPPM,
    PAPPM,
    BasicBlock,
    Bottleneck,
    ConvBNAct,
    FeatureBackbone,
    NormActConv,
    build_feature_backbone,
    default_cfg,
    make_res_layer,
)

__all__ = ["PIDNet"]


class PagFM(nn.Module):
    """Pixel-attention-guided fusion: the similarity of the (1x1 ConvBN-projected) P and I maps
    gates, per pixel, between the upsampled I map and the P map. Output: like ``x_p``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.f_i = ConvBNAct(in_channels, channels, 1, act=False)
        self.f_p = ConvBNAct(in_channels, channels, 1, act=False)

    def forward(self, x_p: Tensor, x_i: Tensor) -> Tensor:
        size = x_p.shape[2:]
        f_i = F.interpolate(self.f_i(x_i), size=size, mode="bilinear", align_corners=False)
        sigma = torch.sigmoid((self.f_p(x_p) * f_i).sum(dim=1, keepdim=True))
        x_i = F.interpolate(x_i, size=size, mode="bilinear", align_corners=False)
        return sigma * x_i + (1 - sigma) * x_p


class Bag(nn.Module):
    """Boundary-attention-guided fusion (PIDNet-L): ``sigma = sigmoid(d)`` blends P and I, then
    BN -> ReLU -> 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = NormActConv(in_channels, out_channels, 3)

    def forward(self, x_p: Tensor, x_i: Tensor, x_d: Tensor) -> Tensor:
        sigma = torch.sigmoid(x_d)
        return self.conv(sigma * x_p + (1 - sigma) * x_i)


class LightBag(nn.Module):
    """Light boundary-attention-guided fusion (PIDNet-S/M): two 1x1 ConvBN on the
    boundary-weighted mixes of P and I, summed."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.f_p = ConvBNAct(in_channels, out_channels, 1, act=False)
        self.f_i = ConvBNAct(in_channels, out_channels, 1, act=False)

    def forward(self, x_p: Tensor, x_i: Tensor, x_d: Tensor) -> Tensor:
        sigma = torch.sigmoid(x_d)
        return self.f_p((1 - sigma) * x_i + x_p) + self.f_i(x_i + sigma * x_p)


class PIDNet(FeatureBackbone):
    """Three-branch PIDNet.

    Args:
        channels: base width ``c`` (S: 32, M and L: 64).
        ppm_channels: pyramid pooling branch width (S, M: 96, L: 112).
        num_stem_blocks: residual blocks per stem / P-branch stage (2: S/M with PAPPM and
            LightBag; 3: L with DAPPM and Bag).
        num_branch_blocks: residual blocks per I-branch stage.
        align_corners: of the bilinear resizes to 1/8.

    Any input size works: maps are resized to the P branch's size (MMSeg resizes to
    ``(H // 8, W // 8)``, the same size when ``H`` and ``W`` are multiples of 8).
    """

    def __init__(
        self,
        in_chans: int = 3,
        channels: int = 64,
        ppm_channels: int = 96,
        num_stem_blocks: int = 2,
        num_branch_blocks: int = 3,
        align_corners: bool = False,
        num_classes: int = 0,
        global_pool: str = "",
    ) -> None:
        super().__init__()
        self.num_classes = 0
        self.align_corners = align_corners
        c = channels
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, c, 3, stride=2),
            ConvBNAct(c, c, 3, stride=2),
            make_res_layer(BasicBlock, c, c, num_stem_blocks),
            nn.ReLU(),
            make_res_layer(BasicBlock, c, 2 * c, num_stem_blocks, stride=2),
            nn.ReLU(),
        )
        self.relu = nn.ReLU()
        self.i_branch_layers = nn.ModuleList(
            [
                make_res_layer(BasicBlock, 2 * c, 4 * c, num_branch_blocks, stride=2),
                make_res_layer(BasicBlock, 4 * c, 8 * c, num_branch_blocks, stride=2),
                make_res_layer(Bottleneck, 8 * c, 8 * c, 2, stride=2),
            ]
        )
        self.p_branch_layers = nn.ModuleList(
            [
                make_res_layer(BasicBlock, 2 * c, 2 * c, num_stem_blocks),
                make_res_layer(BasicBlock, 2 * c, 2 * c, num_stem_blocks),
                make_res_layer(Bottleneck, 2 * c, 2 * c, 1),
            ]
        )
        self.compression_1 = ConvBNAct(4 * c, 2 * c, 1, act=False)
        self.compression_2 = ConvBNAct(8 * c, 2 * c, 1, act=False)
        self.pag_1 = PagFM(2 * c, c)
        self.pag_2 = PagFM(2 * c, c)
        light = num_stem_blocks == 2
        if light:
            d_layers = [
                make_res_layer(BasicBlock, 2 * c, c, 1, single=True),
                make_res_layer(Bottleneck, c, c, 1),
            ]
        else:
            d_layers = [
                make_res_layer(BasicBlock, 2 * c, 2 * c, 1, single=True),
                make_res_layer(BasicBlock, 2 * c, 2 * c, 1, single=True),
            ]
        d_layers.append(make_res_layer(Bottleneck, 2 * c, 2 * c, 1))
        self.d_branch_layers = nn.ModuleList(d_layers)
        self.diff_1 = ConvBNAct(4 * c, c if light else 2 * c, 3, act=False)
        self.diff_2 = ConvBNAct(8 * c, 2 * c, 3, act=False)
        self.spp = (PAPPM if light else DAPPM)(16 * c, ppm_channels, 4 * c, num_scales=5)
        self.dfm = LightBag(4 * c, 4 * c) if light else Bag(4 * c, 4 * c)
        self.feature_info = [
            {"num_chs": 2 * c, "reduction": 8, "module": "pag_1"},
            {"num_chs": 2 * c, "reduction": 8, "module": "d_branch_layers.1"},
            {"num_chs": 4 * c, "reduction": 8, "module": "dfm"},
        ]

    def _resize(self, x: Tensor, size: Any) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> ``[P 1/8 (2c), D 1/8 (2c), output 1/8 (4c)]``."""
        x = self.stem(x)
        x_i = self.relu(self.i_branch_layers[0](x))
        x_p = self.p_branch_layers[0](x)
        x_d = self.d_branch_layers[0](x)
        size = x_p.shape[2:]
        x_p = self.pag_1(x_p, self.compression_1(x_i))
        x_d = x_d + self._resize(self.diff_1(x_i), size)
        aux_p = x_p
        x_i = self.relu(self.i_branch_layers[1](x_i))
        x_p = self.p_branch_layers[1](self.relu(x_p))
        x_d = self.d_branch_layers[1](self.relu(x_d))
        x_p = self.pag_2(x_p, self.compression_2(x_i))
        x_d = x_d + self._resize(self.diff_2(x_i), size)
        aux_d = x_d
        x_i = self.spp(self.i_branch_layers[2](x_i))
        x_p = self.p_branch_layers[2](self.relu(x_p))
        x_d = self.d_branch_layers[2](self.relu(x_d))
        out = self.dfm(x_p, self._resize(x_i, size), x_d)
        return [aux_p, aux_d, out]


default_cfgs = generate_default_cfgs(
    {n: default_cfg(first_conv="stem.0.conv") for n in ("pidnet_s", "pidnet_m", "pidnet_l")}
)

_ARCHS = {
    "pidnet_s": {"channels": 32, "ppm_channels": 96, "num_stem_blocks": 2, "num_branch_blocks": 3},
    "pidnet_m": {"channels": 64, "ppm_channels": 96, "num_stem_blocks": 2, "num_branch_blocks": 3},
    "pidnet_l": {"channels": 64, "ppm_channels": 112, "num_stem_blocks": 3, "num_branch_blocks": 4},
}


def _create(variant: str, pretrained: bool, **kwargs: Any) -> PIDNet:
    return build_feature_backbone(PIDNet, variant, pretrained, 3, **{**_ARCHS[variant], **kwargs})


@register_model
def pidnet_s(pretrained: bool = False, **kwargs: Any) -> PIDNet:
    """PIDNet-S: width 32, PAPPM 96, 2 stem / 3 branch blocks, LightBag."""
    return _create("pidnet_s", pretrained, **kwargs)


@register_model
def pidnet_m(pretrained: bool = False, **kwargs: Any) -> PIDNet:
    """PIDNet-M: width 64, PAPPM 96, 2 stem / 3 branch blocks, LightBag."""
    return _create("pidnet_m", pretrained, **kwargs)


@register_model
def pidnet_l(pretrained: bool = False, **kwargs: Any) -> PIDNet:
    """PIDNet-L: width 64, DAPPM 112, 3 stem / 4 branch blocks, Bag."""
    return _create("pidnet_l", pretrained, **kwargs)
