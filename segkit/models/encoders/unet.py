"""U-Net (Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015), registered in timm as ``unet_s5_d16``.

As MMSegmentation's ``UNet`` backbone, the whole encoder-decoder: ``num_stages`` encoder stages
(2x2 max pooling or a strided first conv, then 3x3 ConvBNReLUs, widths doubling from
``base_channels``) and ``num_stages - 1`` decoder stages (upsample the deeper map to the skip's
width, concatenate with the skip, 3x3 ConvBNReLUs). The segmentation heads read the decoder's
outputs. Module names follow MMSegmentation's, so its checkpoints convert by renaming.

``timm.create_model("unet_s5_d16", features_only=True)`` returns the bottleneck and the decoder
stage outputs sorted by stride (timm's ``feature_info`` requires it), i.e. MMSegmentation's
``UNet.forward`` list reversed::

    [(N, 64, H, W), (N, 128, H/2, W/2), (N, 256, H/4, W/4), (N, 512, H/8, W/8),
     (N, 1024, H/16, W/16)]

so MMSegmentation's ``in_index=4`` (decode head) is index 0 here and ``in_index=3`` (auxiliary
head) is index 1. MMSegmentation asserts that the input size divides by the total downsampling
(16); here other sizes are zero-padded (bottom / right, after normalisation, as MMSegmentation's
data pre-processor pads) and every output cropped back to ``ceil(size / stride)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from segkit.models.lightweight_layers import (
    ConvNormAct,
    FeatureIntermediatesMixin,
    build_seg_backbone,
    seg_backbone_cfg,
)

__all__ = ["UNet"]


class BasicConvBlock(nn.Module):
    """``num_convs`` 3x3 ConvBNReLUs (``convs``); the first has ``stride`` and dilation 1, the
    others dilation ``dilation``. ``(N, in, H, W) -> (N, out, H / stride, W / stride)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_convs: int = 2,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(
                ConvNormAct(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    3,
                    stride=stride if i == 0 else 1,
                    dilation=1 if i == 0 else dilation,
                )
                for i in range(num_convs)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(x)


class Interpolate(nn.Module):
    """Resize by ``scale_factor`` (output size ``floor(size * scale_factor)``)."""

    def __init__(
        self, scale_factor: float = 2.0, mode: str = "bilinear", align_corners: bool = False
    ) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        size = [int(s * self.scale_factor) for s in x.shape[2:]]
        align = self.align_corners if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(x, size=size, mode=self.mode, align_corners=align)


class InterpConv(nn.Module):
    """2x bilinear upsampling then a 1x1 ConvBNReLU (MMSegmentation's ``InterpConv``, default
    arguments). ``(N, in, h, w) -> (N, out, 2h, 2w)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.interp_upsample = nn.Sequential(
            Interpolate(2.0, "bilinear", align_corners=False),
            ConvNormAct(in_channels, out_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.interp_upsample(x)


class DeconvModule(nn.Module):
    """4x4 stride-2 transposed conv (padding 1), BN, ReLU (MMSegmentation's ``DeconvModule``).
    ``(N, in, h, w) -> (N, out, 2h, 2w)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.deconv_upsamping = nn.Sequential(  # sic: MMSegmentation's name
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.deconv_upsamping(x)


class UpConvBlock(nn.Module):
    """Decoder stage: ``upsample`` the deeper map ``x`` to ``skip_channels`` (2x, or a 1x1
    ConvBNReLU when the encoder did not downsample there), concatenate ``[skip, x]`` and fuse by a
    :class:`BasicConvBlock`. ``skip (N, skip_channels, H, W), x (N, in_channels, h, w) ->
    (N, out_channels, H, W)``."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        num_convs: int = 2,
        dilation: int = 1,
        upsample: str | None = "interp",
    ) -> None:
        super().__init__()
        self.conv_block = BasicConvBlock(2 * skip_channels, out_channels, num_convs, 1, dilation)
        if upsample == "interp":
            self.upsample: nn.Module = InterpConv(in_channels, skip_channels)
        elif upsample == "deconv":
            self.upsample = DeconvModule(in_channels, skip_channels)
        elif upsample is None:
            self.upsample = ConvNormAct(in_channels, skip_channels, 1)
        else:
            raise ValueError(f"upsample must be 'interp', 'deconv' or None, got {upsample!r}")

    def forward(self, skip: Tensor, x: Tensor) -> Tensor:
        return self.conv_block(torch.cat([skip, self.upsample(x)], dim=1))


class UNet(FeatureIntermediatesMixin, nn.Module):
    """U-Net encoder-decoder (MMSegmentation's ``UNet`` arguments; ``upsample`` is ``"interp"``
    for ``InterpConv``, ``"deconv"`` for ``DeconvModule``). Input ``(N, in_chans, H, W)``;
    ``features`` returns the decoder outputs (shallowest first) and the bottleneck, see the
    module docstring. Stage ``i`` has ``base_channels * 2**i`` channels."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        base_channels: int = 64,
        num_stages: int = 5,
        strides: Sequence[int] = (1, 1, 1, 1, 1),
        enc_num_convs: Sequence[int] = (2, 2, 2, 2, 2),
        dec_num_convs: Sequence[int] = (2, 2, 2, 2),
        downsamples: Sequence[bool] = (True, True, True, True),
        enc_dilations: Sequence[int] = (1, 1, 1, 1, 1),
        dec_dilations: Sequence[int] = (1, 1, 1, 1),
        upsample: str = "interp",
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("UNet is a segmentation backbone without a classifier")
        for name, seq, n in (
            ("strides", strides, num_stages),
            ("enc_num_convs", enc_num_convs, num_stages),
            ("enc_dilations", enc_dilations, num_stages),
            ("dec_num_convs", dec_num_convs, num_stages - 1),
            ("dec_dilations", dec_dilations, num_stages - 1),
            ("downsamples", downsamples, num_stages - 1),
        ):
            if len(seq) != n:
                raise ValueError(f"{name} needs {n} values, got {len(seq)}")
        self.num_classes = 0
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        reductions = [1]
        prev = in_chans
        for i in range(num_stages):
            c = base_channels * 2**i
            stage: list[nn.Module] = []
            if i > 0:
                down = strides[i] != 1 or bool(downsamples[i - 1])
                if strides[i] == 1 and downsamples[i - 1]:
                    stage.append(nn.MaxPool2d(2))
                self.decoder.append(
                    UpConvBlock(
                        c,
                        c // 2,
                        c // 2,
                        dec_num_convs[i - 1],
                        dec_dilations[i - 1],
                        upsample if down else None,
                    )
                )
                reductions.append(reductions[-1] * (2 if down else 1))
            stage.append(BasicConvBlock(prev, c, enc_num_convs[i], strides[i], enc_dilations[i]))
            self.encoder.append(nn.Sequential(*stage))
            prev = c
        self.size_divisor = reductions[-1]
        # decoder stage i (and the bottleneck, last) sorted by stride
        self.feature_info = [
            {
                "num_chs": base_channels * 2**i,
                "reduction": r,
                "module": f"decoder.{i}" if i < num_stages - 1 else f"encoder.{i}",
            }
            for i, r in enumerate(reductions)
        ]
        self.init_weights()

    def init_weights(self) -> None:
        """MMSegmentation's UNet initialisation (training from scratch): Kaiming-normal
        (``fan_out``, ReLU) convolutions with zero bias; BN weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> list[Tensor]:
        h, w = x.shape[2:]
        d = self.size_divisor
        pad_h, pad_w = -h % d, -w % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outs = [x]
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](skips[i], x)
            outs.append(x)
        outs.reverse()
        if pad_h or pad_w:
            outs = [
                o[..., : math.ceil(h / info["reduction"]), : math.ceil(w / info["reduction"])]
                for o, info in zip(outs, self.feature_info, strict=True)
            ]
        return outs


default_cfgs = generate_default_cfgs({"unet_s5_d16": seg_backbone_cfg(input_size=(3, 64, 64))})


@register_model
def unet_s5_d16(pretrained: bool = False, **kwargs: Any) -> UNet:
    """UNet-S5-D16 (5 stages, 4 max-pool downsamplings, 64 base channels, bilinear upsampling
    + 1x1 conv) as in MMSegmentation's ``configs/_base_/models/fcn_unet_s5-d16.py``."""
    return build_seg_backbone(UNet, "unet_s5_d16", pretrained, (0, 1, 2, 3, 4), **kwargs)
