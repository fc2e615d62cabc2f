"""ERFNet (Romera et al., "ERFNet: Efficient Residual Factorized ConvNet for Real-time
Semantic Segmentation", T-ITS 2018), registered in timm as ``erfnet``.

As MMSegmentation's ``ERFNet`` backbone, the whole encoder-decoder: downsampler blocks (strided
conv concatenated with max pooling) and factorized non-bottleneck blocks (3x1 / 1x3 convs, the
second pair dilated) to stride 8, then two transposed-conv upsamplers with non-bottleneck blocks
back to stride 2, where MMSegmentation's FCN head classifies. Module names follow
MMSegmentation's, so its checkpoints convert by renaming.

``timm.create_model("erfnet", features_only=True)`` returns ``[(N, 16, H/2, W/2)]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.lightweight_layers import (
    FeatureIntermediatesMixin,
    build_seg_backbone,
    seg_backbone_cfg,
)

__all__ = ["ERFNet"]

_EPS = 1e-3  # MMSegmentation's ERFNet blocks use BN(eps=1e-3) whatever the config's norm_cfg


class DownsamplerBlock(nn.Module):
    """3x3 stride-2 conv to ``out - in`` channels concatenated with 2x2 max pooling (resized to
    the conv's size for odd inputs), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv(x)
        # Unconditional, so that exported graphs take odd and even sizes alike: resizing to the
        # same size is an exact copy in PyTorch (and in ONNX Resize).
        pool = F.interpolate(
            self.pool(x), size=conv.shape[2:], mode="bilinear", align_corners=False
        )
        return self.act(self.bn(torch.cat([conv, pool], dim=1)))


class NonBottleneck1d(nn.Module):
    """Two factorized 3x3 convs (3x1, ReLU, 1x3, BN), the second pair dilated by ``dilation``,
    ReLU between them, dropout after, residual, ReLU. ``convs_layers`` keeps MMSegmentation's
    indices (the parameter-free layers included)."""

    def __init__(self, channels: int, drop_rate: float = 0.0, dilation: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, d in enumerate((1, dilation)):
            layers += [
                nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1)),
                nn.ReLU(),
                nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d)),
                nn.BatchNorm2d(channels, eps=_EPS),
                nn.ReLU() if i == 0 else nn.Dropout(drop_rate),
            ]
        self.convs_layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.convs_layers(x) + x)


class UpsamplerBlock(nn.Sequential):
    """3x3 transposed conv (stride 2, exact 2x upsampling), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=_EPS)
        self.act = nn.ReLU(inplace=True)


class ERFNet(FeatureIntermediatesMixin, nn.Module):
    """ERFNet encoder-decoder. Input ``(N, in_chans, H, W)``; ``features`` returns
    ``[(N, dec_non_bottleneck_channels[-1], h, w)]`` at stride
    ``2 ** (len(enc_downsample_channels) - len(dec_upsample_channels))`` (2 by default: the
    encoder's stride-8 size, rounded up, times 4)."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        enc_downsample_channels: Sequence[int] = (16, 64, 128),
        enc_stage_non_bottlenecks: Sequence[int] = (5, 8),
        enc_non_bottleneck_dilations: Sequence[int] = (2, 4, 8, 16),
        enc_non_bottleneck_channels: Sequence[int] = (64, 128),
        dec_upsample_channels: Sequence[int] = (64, 16),
        dec_stages_non_bottleneck: Sequence[int] = (2, 2),
        dec_non_bottleneck_channels: Sequence[int] = (64, 16),
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("ERFNet is a segmentation backbone without a classifier")
        if len(enc_downsample_channels) != len(dec_upsample_channels) + 1:
            raise ValueError("need one more encoder downsampler than decoder upsamplers")
        if enc_stage_non_bottlenecks[-1] % len(enc_non_bottleneck_dilations):
            raise ValueError("the last encoder stage must repeat the dilation cycle evenly")
        self.num_classes = 0
        enc: list[nn.Module] = [DownsamplerBlock(in_chans, enc_downsample_channels[0])]
        last = len(enc_downsample_channels) - 2
        for i in range(len(enc_downsample_channels) - 1):
            c = enc_downsample_channels[i + 1]
            enc.append(DownsamplerBlock(enc_downsample_channels[i], c))
            if i == last:  # the dilated stage cycles through the dilations
                cycles = enc_stage_non_bottlenecks[-1] // len(enc_non_bottleneck_dilations)
                enc += [
                    NonBottleneck1d(c, dropout_ratio, d)
                    for _ in range(cycles)
                    for d in enc_non_bottleneck_dilations
                ]
            else:
                enc += [
                    NonBottleneck1d(c, dropout_ratio) for _ in range(enc_stage_non_bottlenecks[i])
                ]
        self.encoder = nn.ModuleList(enc)
        dec: list[nn.Module] = []
        prev = enc_downsample_channels[-1]
        for c, n in zip(dec_non_bottleneck_channels, dec_stages_non_bottleneck, strict=True):
            dec.append(UpsamplerBlock(prev, c))
            dec += [NonBottleneck1d(c) for _ in range(n)]
            prev = c
        self.decoder = nn.ModuleList(dec)
        stride = 2 ** (len(enc_downsample_channels) - len(dec_upsample_channels))
        self.feature_info = [{"num_chs": prev, "reduction": stride, "module": "decoder"}]

    def features(self, x: Tensor) -> list[Tensor]:
        for block in self.encoder:
            x = block(x)
        for block in self.decoder:
            x = block(x)
        return [x]


default_cfgs = generate_default_cfgs({"erfnet": seg_backbone_cfg()})


@register_model
def erfnet(pretrained: bool = False, **kwargs: Any) -> ERFNet:
    """ERFNet as in MMSegmentation's ``erfnet_fcn_4xb4-160k_cityscapes-512x1024``."""
    return build_seg_backbone(ERFNet, "erfnet", pretrained, (0,), **kwargs)
