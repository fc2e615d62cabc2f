"""Feature Pyramid Network neck (Lin et al., CVPR 2017), as MMSegmentation's ``FPN``."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class ConvNormAct(nn.Sequential):
    """Conv2d, optional norm, optional ReLU: MMSegmentation's ``ConvModule`` with its parameter
    names (``conv``; ``bn`` or ``gn``). The conv has a bias only when there is no norm.

    Args:
        norm: ``None``, ``"bn"`` (BatchNorm2d) or ``"gn"`` (GroupNorm with ``num_groups``).
        act: apply ReLU.
        dilation, groups: of the conv; padding keeps the size ("same", odd kernels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        norm: str | None = None,
        act: bool = False,
        num_groups: int = 32,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=norm is None,
        )
        if norm == "bn":
            self.bn = nn.BatchNorm2d(out_channels)
        elif norm == "gn":
            self.gn = nn.GroupNorm(num_groups, out_channels)
        elif norm is not None:
            raise ValueError(f"norm must be None, 'bn' or 'gn', got {norm!r}")
        if act:
            self.act = nn.ReLU()


class FPN(nn.Module):
    """Top-down feature pyramid: 1x1 lateral convs, each level plus the upsampled level above it,
    then a 3x3 conv per level; optional extra coarser levels.

    Args:
        in_channels, in_strides: of the encoder outputs.
        out_channels: width of every output level.
        num_outs: number of outputs (default: one per used input level). Levels beyond the inputs
            are made by stride-2 max pooling, or, with ``add_extra_convs``, by stride-2 3x3 convs
            on ``"on_input"`` (the last used input), ``"on_lateral"`` or ``"on_output"``
            (``True`` means ``"on_output"``).
        start_level, end_level: the input levels used (``end_level`` exclusive; -1: all).
        relu_before_extra_convs: ReLU before the second and later extra convs.
        no_norm_on_lateral: no norm in the lateral convs.
        norm, act: norm (``None``/``"bn"``/``"gn"``) and ReLU of every conv (MMSeg's Semantic FPN:
            neither, so the convs have biases).
        upsample_mode: interpolation of the top-down path (``"nearest"``, or ``"bilinear"`` with
            ``align_corners=False``); always to the exact size of the level below.

    ``features`` -> ``num_outs`` maps ``(N, out_channels, H / strides[i], W / strides[i])``.
    Submodule names (``lateral_convs``, ``fpn_convs``) are MMSegmentation's.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_channels: int = 256,
        num_outs: int | None = None,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        norm: str | None = None,
        act: bool = False,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        end = len(in_channels) if end_level == -1 else end_level
        used = end - start_level
        num_outs = used if num_outs is None else num_outs
        if num_outs < used or (end_level != -1 and num_outs != used):
            raise ValueError(f"num_outs={num_outs} does not fit levels {start_level}..{end}")
        if add_extra_convs is True:
            add_extra_convs = "on_output"
        if add_extra_convs not in (False, "on_input", "on_lateral", "on_output"):
            raise ValueError(f"unknown add_extra_convs {add_extra_convs!r}")
        self.start_level, self.end_level = start_level, end
        self.num_outs = num_outs
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_mode = upsample_mode
        lateral_norm = None if no_norm_on_lateral else norm
        self.lateral_convs = nn.ModuleList(
            ConvNormAct(in_channels[i], out_channels, 1, norm=lateral_norm, act=act)
            for i in range(start_level, end)
        )
        self.fpn_convs = nn.ModuleList(
            ConvNormAct(out_channels, out_channels, 3, norm=norm, act=act)
            for _ in range(start_level, end)
        )
        if add_extra_convs:
            for i in range(num_outs - used):
                c_in = in_channels[end - 1] if i == 0 and add_extra_convs == "on_input" else None
                self.fpn_convs.append(
                    ConvNormAct(c_in or out_channels, out_channels, 3, 2, norm=norm, act=act)
                )
        self.channels = [out_channels] * num_outs
        strides = list(in_strides[start_level:end])
        self.strides = strides + [strides[-1] * 2**k for k in range(1, num_outs - used + 1)]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        inputs = list(features)
        laterals = [conv(inputs[self.start_level + i]) for i, conv in enumerate(self.lateral_convs)]
        align = False if self.upsample_mode in ("bilinear", "bicubic") else None
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i],
                size=laterals[i - 1].shape[2:],
                mode=self.upsample_mode,
                align_corners=align,
            )
        used = len(laterals)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        if self.num_outs > used:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - used):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {
                    "on_input": inputs[self.end_level - 1],
                    "on_lateral": laterals[-1],
                    "on_output": outs[-1],
                }[self.add_extra_convs]
                outs.append(self.fpn_convs[used](source))
                for i in range(used + 1, self.num_outs):
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](x))
        return outs
