"""ICNet's multi-resolution backbone (Zhao et al., "ICNet for Real-Time Semantic Segmentation
on High-Resolution Images", ECCV 2018), registered in timm as ``icnet_r50``.

As MMSegmentation's ``ICNet`` backbone: three branches on one image,

- ``conv_sub1``: three stride-2 ConvNormAct on the full image (stride 8, light);
- ``conv_sub2``: a dilated ResNetV1c (timm's ``resnet50c``, output stride 8, max pooling with
  ``ceil_mode``) up to ``layer2`` on the half-resolution image (stride 16);
- ``conv_sub4``: ``layer3``/``layer4`` on a further halved map, pyramid pooling and a 3x3
  bottleneck (stride 32).

The cascade fusion is :class:`segkit.models.necks.icnet.ICNeck`. Module names follow
MMSegmentation's (the inner ResNet uses timm's), so its checkpoints convert by renaming.

``timm.create_model("icnet_r50", features_only=True)`` returns
``[(N, 64, H/8, W/8), (N, 256, H/16, W/16), (N, 256, H/32, W/32)]`` (sizes approximate: the
halvings round down, the strided convs up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.lightweight_layers import (
    ConvNormAct,
    FeatureIntermediatesMixin,
    PyramidPooling,
    build_seg_backbone,
    seg_backbone_cfg,
)

__all__ = ["ICNet"]


class ICNet(FeatureIntermediatesMixin, nn.Module):
    """ICNet backbone. Input ``(N, in_chans, H, W)``; ``features`` returns the three branch
    outputs ``[(N, out_channels[0], H/8, W/8), (N, out_channels[1], H/16, W/16),
    (N, out_channels[2], H/32, W/32)]``.

    Args:
        backbone: a timm ResNet name (Bottleneck ResNets match MMSegmentation's ResNetV1c).
        backbone_args: extra ``timm.create_model`` arguments (``channels``, ``stem_width``).
        light_branch_middle_channels: width of the first two full-resolution convs.
        psp_out_channels: width of the pyramid pooling branches and its bottleneck.
        out_channels: widths of the three outputs.
        pool_scales: pyramid pooling bin sizes.
        align_corners: of the bilinear halvings and pyramid upsampling.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        backbone: str = "resnet50c",
        backbone_args: Mapping[str, Any] | None = None,
        light_branch_middle_channels: int = 32,
        psp_out_channels: int = 512,
        out_channels: Sequence[int] = (64, 256, 256),
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("ICNet is a segmentation backbone without a classifier")
        self.num_classes = 0
        self.align_corners = align_corners
        self.backbone = timm.create_model(
            backbone,
            in_chans=in_chans,
            output_stride=8,
            num_classes=0,
            global_pool="",
            **dict(backbone_args or {}),
        )
        self.backbone.maxpool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.backbone.fc = nn.Identity()
        self.backbone.global_pool = nn.Identity()
        widths = {f["module"]: f["num_chs"] for f in self.backbone.feature_info}
        c2, c4 = widths["layer2"], widths["layer4"]
        self.psp_modules = PyramidPooling(pool_scales, c4, psp_out_channels, align_corners)
        self.psp_bottleneck = ConvNormAct(
            c4 + len(pool_scales) * psp_out_channels, psp_out_channels, 3
        )
        mid = light_branch_middle_channels
        self.conv_sub1 = nn.Sequential(
            ConvNormAct(in_chans, mid, 3, stride=2),
            ConvNormAct(mid, mid, 3, stride=2),
            ConvNormAct(mid, out_channels[0], 3, stride=2),
        )
        self.conv_sub2 = ConvNormAct(c2, out_channels[1], 1)
        self.conv_sub4 = ConvNormAct(psp_out_channels, out_channels[2], 1)
        self.feature_info = [
            {"num_chs": out_channels[0], "reduction": 8, "module": "conv_sub1"},
            {"num_chs": out_channels[1], "reduction": 16, "module": "conv_sub2"},
            {"num_chs": out_channels[2], "reduction": 32, "module": "conv_sub4"},
        ]

    def _half(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=self.align_corners)

    def features(self, x: Tensor) -> list[Tensor]:
        r = self.backbone
        sub1 = self.conv_sub1(x)
        x = r.maxpool(r.act1(r.bn1(r.conv1(self._half(x)))))
        x = r.layer2(r.layer1(x))
        sub2 = self.conv_sub2(x)
        x = r.layer4(r.layer3(self._half(x)))
        x = self.psp_bottleneck(torch.cat([*self.psp_modules(x), x], dim=1))
        return [sub1, sub2, self.conv_sub4(x)]


default_cfgs = generate_default_cfgs({"icnet_r50": seg_backbone_cfg()})


@register_model
def icnet_r50(pretrained: bool = False, **kwargs: Any) -> ICNet:
    """ICNet on a dilated ResNetV1c-50, as MMSegmentation's ``icnet_r50-d8`` configs."""
    return build_seg_backbone(ICNet, "icnet_r50", pretrained, (0, 1, 2), **kwargs)
