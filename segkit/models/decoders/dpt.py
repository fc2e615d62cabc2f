"""DPT's decoder (Ranftl et al., "Vision Transformers for Dense Prediction", ICCV 2021), as
MMSegmentation's ``DPTHead``: reassemble ViT tokens into a 4-level pyramid, fuse it top-down.

With ``batch_norm=False, fuse_to_skip_size=True, final_project=False`` it is Depth Anything's
neck (Yang et al., 2024; transformers' ``DepthAnythingNeck``): the same reassembly (readout
"ignore") and fusion, with biased residual convolutions and no batch norm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class _Conv(nn.Module):
    """A bare convolution stored as ``conv`` (MMSegmentation's ``ConvModule`` without norm/act)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _ReLUConvBN(nn.Module):
    """ReLU -> 3x3 conv (no bias) -> BatchNorm (pre-activation order); without ``batch_norm``,
    ReLU -> 3x3 conv with bias."""

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(x)))


class PreActResidualConvUnit(nn.Module):
    """``x + (ReLU-conv-BN)^2 (x)`` (``(ReLU-conv)^2`` without ``batch_norm``)."""

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = _ReLUConvBN(channels, batch_norm)
        self.conv2 = _ReLUConvBN(channels, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class FeatureFusionBlock(nn.Module):
    """Adds a residual unit's output on the skip (resized to ``x`` if needed), applies a second
    residual unit, upsamples (bilinear, ``align_corners=True``) x2 or to ``size`` when given,
    and projects (1x1 conv)."""

    def __init__(self, channels: int, with_skip: bool = True, batch_norm: bool = True) -> None:
        super().__init__()
        self.project = _Conv(channels, channels, 1, bias=True)
        self.res_conv_unit1 = PreActResidualConvUnit(channels, batch_norm) if with_skip else None
        self.res_conv_unit2 = PreActResidualConvUnit(channels, batch_norm)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None
    ) -> Tensor:
        if skip is not None and self.res_conv_unit1 is not None:
            if skip.shape != x.shape:
                skip = F.interpolate(skip, size=x.shape[2:], mode="bilinear", align_corners=False)
            x = x + self.res_conv_unit1(skip)
        x = self.res_conv_unit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.project(x)


class ReassembleBlocks(nn.Module):
    """Per level: optional class-token readout, 1x1 projection to ``out_channels[i]`` and a
    resampling of the stride-``p`` tokens by x4 (transposed conv), x2, x1 and x0.5 (3x3 conv).

    Args:
        readout_type: ``"ignore"`` the class token, ``"add"`` it to every token, or
            ``"project"`` (concatenate it to every token, Linear 2C->C + GELU).
    """

    def __init__(
        self,
        in_channels: int = 768,
        out_channels: Sequence[int] = (96, 192, 384, 768),
        readout_type: str = "ignore",
    ) -> None:
        super().__init__()
        if readout_type not in ("ignore", "add", "project"):
            raise ValueError(f"unknown readout_type {readout_type!r}")
        self.readout_type = readout_type
        self.projects = nn.ModuleList(_Conv(in_channels, c, 1, bias=True) for c in out_channels)
        c = out_channels
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        if readout_type == "project":
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * in_channels, in_channels), nn.GELU())
                for _ in out_channels
            )

    def forward(self, inputs: Sequence[Tensor | tuple[Tensor, Tensor]]) -> list[Tensor]:
        """``(map (N, C, h, w), cls (N, C))`` pairs, or bare maps for readout ``"ignore"``."""
        out = []
        for i, item in enumerate(inputs):
            if isinstance(item, Tensor):
                if self.readout_type != "ignore":
                    raise ValueError(f"readout_type={self.readout_type!r} needs class tokens")
                x, cls_token = item, None
            else:
                x, cls_token = item
            n, c, h, w = x.shape
            if self.readout_type == "project":
                tokens = x.flatten(2).transpose(1, 2)
                readout = cls_token.unsqueeze(1).expand_as(tokens)
                tokens = self.readout_projects[i](torch.cat([tokens, readout], dim=-1))
                x = tokens.transpose(1, 2).reshape(n, c, h, w)
            elif self.readout_type == "add":
                x = x + cls_token[:, :, None, None]
            out.append(self.resize_layers[i](self.projects[i](x)))
        return out


class DPTDecoder(nn.Module):
    """Reassembles four ViT outputs (``(map (N, C, h, w), cls (N, C))`` pairs, from an encoder
    with ``output_cls_token=True``; bare maps for readout ``"ignore"``) into strides
    ``p/4 ... 2p``, maps each to ``channels`` with a 3x3 conv, fuses them top-down (each fusion
    upsamples x2) and ends with a 3x3 ConvBNReLU.

    Output: ``(N, channels, 8h, 8w)`` for a token grid ``(h, w)``, i.e. ``H / (p / 8)`` for
    patch stride ``p`` and ``H`` a multiple of ``p`` (an odd side ``h`` gives ``16 ceil(h / 2)``
    unless ``fuse_to_skip_size``).

    Args:
        batch_norm: BatchNorm in the fusion blocks' residual units (MMSegmentation, DPT's
            ADE20K models); without it their convolutions have biases (Depth Anything).
        fuse_to_skip_size: each fusion upsamples to the next level's size rather than x2 (they
            differ for an odd token grid: Depth Anything's neck); the last one still does x2.
        final_project: end with the 3x3 ConvBNReLU (MMSegmentation's ``DPTHead``; Depth
            Anything's neck has none: its depth head starts with its own convolution).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        post_process_channels: Sequence[int] = (96, 192, 384, 768),
        readout_type: str = "project",
        expand_channels: bool = False,
        batch_norm: bool = True,
        fuse_to_skip_size: bool = False,
        final_project: bool = True,
    ) -> None:
        super().__init__()
        if len(in_channels) != 4 or len(post_process_channels) != 4:
            raise ValueError("DPT takes four encoder outputs")
        self.channels = channels
        stride = in_strides[0] / 8
        self.output_stride = int(stride) if stride.is_integer() else stride
        self.fuse_to_skip_size = fuse_to_skip_size
        self.reassemble_blocks = ReassembleBlocks(
            in_channels[0], post_process_channels, readout_type
        )
        widths = [c * 2**i if expand_channels else c for i, c in enumerate(post_process_channels)]
        self.convs = nn.ModuleList(_Conv(c, channels, 3, bias=False) for c in widths)
        self.fusion_blocks = nn.ModuleList(
            FeatureFusionBlock(channels, with_skip=i > 0, batch_norm=batch_norm) for i in range(4)
        )
        self.project = ConvBNReLU(channels, channels, 3) if final_project else None

    def forward(self, features: Sequence[Tensor | tuple[Tensor, Tensor]]) -> Tensor:
        x = [conv(f) for conv, f in zip(self.convs, self.reassemble_blocks(features))]
        levels = len(x)
        out = None  # fused top-down: x[-1] (coarsest) first, x[0] last
        for i, block in enumerate(self.fusion_blocks):
            skip = x[levels - 1 - i]
            size = None
            if self.fuse_to_skip_size and i < levels - 1:
                size = x[levels - 2 - i].shape[2:]
            out = block(skip, size=size) if out is None else block(out, skip, size=size)
        return out if self.project is None else self.project(out)
