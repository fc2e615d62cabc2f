"""Building blocks of the real-time networks (BiSeNet, STDC, DDRNet, PIDNet).

Parameter names follow MMSegmentation (``ConvModule``: ``conv``/``bn``; ``BasicBlock`` /
``Bottleneck`` of ``mmseg.models.utils``; ``DAPPM``/``PAPPM``), which keeps checkpoint
conversion a renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DAPPM",
    "PAPPM",
    "AttentionRefinement",
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "FeatureBackbone",
    "NormActConv",
    "build_feature_backbone",
    "default_cfg",
    "make_res_layer",
]


class ConvBNAct(nn.Sequential):
    """Conv2d -> optional BatchNorm2d -> optional ReLU (MMSegmentation's ``ConvModule`` in its
    default order). The convolution has a bias only without a norm (``bias=None``) unless told.

    ``(N, in_channels, H, W)`` -> ``(N, out_channels, H / stride, W / stride)``; padding defaults
    to "same" for odd kernels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm: bool = True,
        act: bool = True,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=(not norm) if bias is None else bias,
        )
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.act = nn.ReLU()


class NormActConv(nn.Module):
    """BatchNorm2d -> ReLU -> Conv2d (no bias): ``ConvModule(order=('norm', 'act', 'conv'))``,
    whose norm acts on the *input* channels (DAPPM/PAPPM, DDRNet's and PIDNet's heads)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU() if act else nn.Identity()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.act(self.bn(x)))


class AttentionRefinement(nn.Module):
    """BiSeNet's attention refinement: 3x3 ConvBNReLU, then channel attention (global pool,
    1x1 conv + BN, sigmoid) that rescales it. ``(N, C_in, H, W)`` -> ``(N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_layer = ConvBNAct(in_channels, out_channels, 3)
        self.atten_conv_layer = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvBNAct(out_channels, out_channels, 1, act=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_layer(x)
        return x * self.atten_conv_layer(x)


class BasicBlock(nn.Module):
    """Two 3x3 ConvBN (ReLU after the first), residual, optional ReLU (``act_out``).

    MMSegmentation's ``mmseg.models.utils.BasicBlock`` (DDRNet, PIDNet); stride on ``conv1``.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act_out: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, channels, 3, stride=stride)
        self.conv2 = ConvBNAct(channels, channels, 3, act=False)
        self.downsample = downsample
        self.act = nn.ReLU() if act_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv2(self.conv1(x)) + residual)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 ConvBN with expansion 2, residual, optional ReLU (``act_out``,
    off by default as in MMSegmentation's ``mmseg.models.utils.Bottleneck``)."""

    expansion = 2

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act_out: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, channels, 1)
        self.conv2 = ConvBNAct(channels, channels, 3, stride=stride)
        self.conv3 = ConvBNAct(channels, channels * self.expansion, 1, act=False)
        self.downsample = downsample
        self.act = nn.ReLU() if act_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv3(self.conv2(self.conv1(x))) + residual)


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    channels: int,
    num_blocks: int,
    stride: int = 1,
    single: bool = False,
) -> nn.Module:
    """A stage of ``num_blocks`` residual blocks as DDRNet/PIDNet build it: the first block
    strides (1x1 ConvBN shortcut when the shape changes) and keeps its block's default output
    activation, the last one has none. ``single`` returns one block without output activation
    (PIDNet's ``_make_single_layer``)."""
    downsample = None
    out_channels = channels * block.expansion
    if stride != 1 or in_channels != out_channels:
        downsample = ConvBNAct(in_channels, out_channels, 1, stride=stride, act=False)
    if single:
        return block(in_channels, channels, stride, downsample, act_out=False)
    layers = [block(in_channels, channels, stride, downsample, act_out=block is BasicBlock)]
    for i in range(1, num_blocks):
        layers.append(block(out_channels, channels, act_out=i != num_blocks - 1))
    return nn.Sequential(*layers)


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling (DDRNet): average pools at growing scales plus a global
    pool, each upsampled and fused hierarchically with the previous scale, then compressed and
    added to a 1x1 shortcut. All convs are BN -> ReLU -> conv.

    ``(N, in_channels, H, W)`` -> ``(N, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int,
        out_channels: int,
        num_scales: int = 5,
        kernel_sizes: Sequence[int] = (5, 9, 17),
        strides: Sequence[int] = (2, 4, 8),
        paddings: Sequence[int] = (2, 4, 8),
    ) -> None:
        super().__init__()
        self.num_scales = num_scales
        scales: list[nn.Module] = [NormActConv(in_channels, branch_channels)]
        for i in range(1, num_scales - 1):
            pool = nn.AvgPool2d(kernel_sizes[i - 1], strides[i - 1], paddings[i - 1])
            scales.append(nn.Sequential(pool, NormActConv(in_channels, branch_channels)))
        scales.append(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), NormActConv(in_channels, branch_channels))
        )
        self.scales = nn.ModuleList(scales)
        self.processes = self._processes(branch_channels, num_scales)
        self.compression = NormActConv(branch_channels * num_scales, out_channels)
        self.shortcut = NormActConv(in_channels, out_channels)

    @staticmethod
    def _processes(branch_channels: int, num_scales: int) -> nn.Module:
        return nn.ModuleList(
            NormActConv(branch_channels, branch_channels, 3) for _ in range(num_scales - 1)
        )

    def _up(self, i: int, x: Tensor) -> Tensor:
        return F.interpolate(self.scales[i](x), size=x.shape[2:], mode="bilinear")

    def forward(self, x: Tensor) -> Tensor:
        feats = [self.scales[0](x)]
        for i in range(1, self.num_scales):
            feats.append(self.processes[i - 1](self._up(i, x) + feats[i - 1]))
        return self.compression(torch.cat(feats, dim=1)) + self.shortcut(x)


class PAPPM(DAPPM):
    """Parallel Aggregation PPM (PIDNet-S/M): like :class:`DAPPM` but every scale is fused with
    the first one in parallel, by one grouped 3x3 conv. Same shapes as :class:`DAPPM`."""

    @staticmethod
    def _processes(branch_channels: int, num_scales: int) -> nn.Module:
        width = branch_channels * (num_scales - 1)
        return NormActConv(width, width, 3, groups=num_scales - 1)

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.scales[0](x)
        feats = [self._up(i, x) + x0 for i in range(1, self.num_scales)]
        out = self.processes(torch.cat(feats, dim=1))
        return self.compression(torch.cat([x0, out], dim=1)) + self.shortcut(x)


class FeatureBackbone(nn.Module):
    """Base of the segmentation-only backbones registered in timm: ``forward_features`` returns
    every output level, described by ``feature_info``; timm's ``FeatureGetterNet``
    (``features_only=True``) picks levels through :meth:`forward_intermediates`.

    These networks have no classifier: ``num_classes`` and ``global_pool`` are accepted for
    timm's builder and ignored; :meth:`forward` returns the levels too.
    """

    feature_info: list[dict]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = True,
        **kwargs,
    ) -> list[Tensor]:
        """The levels ``indices`` (all by default; an int ``n``: the last ``n``), NCHW."""
        feats = self.forward_features(x)
        if indices is None:
            indices = range(len(feats))
        elif isinstance(indices, int):
            indices = range(len(feats) - indices, len(feats))
        return [feats[i] for i in indices]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_features(x)


def build_feature_backbone(
    cls: type[FeatureBackbone], variant: str, pretrained: bool, num_levels: int, **kwargs
) -> nn.Module:
    """timm's ``build_model_with_cfg`` for a :class:`FeatureBackbone` with ``num_levels`` output
    levels (``features_only=True`` wraps it in timm's ``FeatureGetterNet``)."""
    from timm.models import build_model_with_cfg

    return build_model_with_cfg(
        cls,
        variant,
        pretrained,
        feature_cfg={"feature_cls": "getter", "out_indices": tuple(range(num_levels))},
        **kwargs,
    )


def default_cfg(**extra) -> dict:
    """timm pretrained config of a backbone with no published ImageNet weights in timm."""
    return {
        "num_classes": 0,
        "input_size": (3, 1024, 1024),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "license": "apache-2.0",
        **extra,
    }
