"""DDRNet backbones (Pan et al., "Deep Dual-resolution Networks for Real-time and Accurate
Semantic Segmentation of Road Scenes", T-ITS 2022), registered in timm as ``ddrnet_23_slim``
and ``ddrnet_23``.

MMSegmentation's ``DDRNet``: a 1/8 stem, then a high-resolution spatial branch (1/8) and a
low-resolution context branch (1/16 -> 1/64, DAPPM at the end) exchanging features twice
(bilateral fusion), summed at 1/8.

Outputs (MMSegmentation returns the first only in training; here always, it costs nothing):
``[spatial branch after the first fusion (2 x channels, 1/8), final (4 x channels, 1/8)]``;
the first feeds the auxiliary head.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.realtime_layers import (
    DAPPM,
    BasicBlock,
    Bottleneck,
    ConvBNAct,
    FeatureBackbone,
    build_feature_backbone,
    default_cfg,
    make_res_layer,
)

__all__ = ["DDRNet"]


class DDRNet(FeatureBackbone):
    """Dual-resolution network.

    Args:
        channels: base width ``c`` (32: DDRNet-23-slim, 64: DDRNet-23); the spatial branch is
            ``2c`` wide, the context branch ``4c``, ``8c``, ``16c``.
        ppm_channels: DAPPM branch width.
        align_corners: of the bilinear resizes to 1/8.

    Any input size works: the context maps are resized to the spatial branch's size (MMSeg
    resizes to ``(H // 8, W // 8)``, the same size when ``H`` and ``W`` are multiples of 8).
    """

    def __init__(
        self,
        in_chans: int = 3,
        channels: int = 32,
        ppm_channels: int = 128,
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
            make_res_layer(BasicBlock, c, c, 2),
            nn.ReLU(),
            make_res_layer(BasicBlock, c, 2 * c, 2, stride=2),
            nn.ReLU(),
        )
        self.relu = nn.ReLU()
        self.context_branch_layers = nn.ModuleList(
            [
                make_res_layer(BasicBlock, 2 * c, 4 * c, 2, stride=2),
                make_res_layer(BasicBlock, 4 * c, 8 * c, 2, stride=2),
                make_res_layer(Bottleneck, 8 * c, 8 * c, 1, stride=2),
            ]
        )
        self.compression_1 = ConvBNAct(4 * c, 2 * c, 1, act=False)
        self.down_1 = ConvBNAct(2 * c, 4 * c, 3, stride=2, act=False)
        self.compression_2 = ConvBNAct(8 * c, 2 * c, 1, act=False)
        self.down_2 = nn.Sequential(
            ConvBNAct(2 * c, 4 * c, 3, stride=2), ConvBNAct(4 * c, 8 * c, 3, stride=2, act=False)
        )
        self.spatial_branch_layers = nn.ModuleList(
            [
                make_res_layer(BasicBlock, 2 * c, 2 * c, 2),
                make_res_layer(BasicBlock, 2 * c, 2 * c, 2),
                make_res_layer(Bottleneck, 2 * c, 2 * c, 1),
            ]
        )
        self.spp = DAPPM(16 * c, ppm_channels, 4 * c, num_scales=5)
        self.feature_info = [
            {"num_chs": 2 * c, "reduction": 8, "module": "spatial_branch_layers.0"},
            {"num_chs": 4 * c, "reduction": 8, "module": "spp"},
        ]

    def _resize(self, x: Tensor, size: Any) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> ``[spatial 1/8 after the first fusion, output 1/8]``."""
        x = self.stem(x)
        x_c = self.context_branch_layers[0](x)
        x_s = self.spatial_branch_layers[0](x)
        size = x_s.shape[2:]
        comp_c = self.compression_1(self.relu(x_c))
        x_c = x_c + self.down_1(self.relu(x_s))
        x_s = x_s + self._resize(comp_c, size)
        aux = x_s
        x_c = self.context_branch_layers[1](self.relu(x_c))
        x_s = self.spatial_branch_layers[1](self.relu(x_s))
        comp_c = self.compression_2(self.relu(x_c))
        x_c = x_c + self.down_2(self.relu(x_s))
        x_s = x_s + self._resize(comp_c, size)
        x_s = self.spatial_branch_layers[2](self.relu(x_s))
        x_c = self.spp(self.context_branch_layers[2](self.relu(x_c)))
        return [aux, x_s + self._resize(x_c, size)]


default_cfgs = generate_default_cfgs(
    {n: default_cfg(first_conv="stem.0.conv") for n in ("ddrnet_23_slim", "ddrnet_23")}
)


@register_model
def ddrnet_23_slim(pretrained: bool = False, **kwargs: Any) -> DDRNet:
    """DDRNet-23-slim: base width 32, DAPPM 128."""
    kwargs = {"channels": 32, "ppm_channels": 128, **kwargs}
    return build_feature_backbone(DDRNet, "ddrnet_23_slim", pretrained, 2, **kwargs)


@register_model
def ddrnet_23(pretrained: bool = False, **kwargs: Any) -> DDRNet:
    """DDRNet-23: base width 64, DAPPM 128."""
    kwargs = {"channels": 64, "ppm_channels": 128, **kwargs}
    return build_feature_backbone(DDRNet, "ddrnet_23", pretrained, 2, **kwargs)
