"""Building blocks of the lightweight networks (Fast-SCNN, ICNet, CGNet, ERFNet, UNet, LR-ASPP).

Parameter names follow MMSegmentation's ``ConvModule`` (``conv``, ``bn``) and
``mmseg.models.utils.InvertedResidual`` (``conv.<i>``), so checkpoint conversion is a renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.ops.adaptive_pool import AdaptiveAvgPool2d

__all__ = ["ConvNormAct", "DepthwiseSeparableConv", "InvertedResidual", "PyramidPooling", "act"]


def act(name: str | None, channels: int = 0) -> nn.Module | None:
    """An activation by name: ``relu``, ``relu6``, ``prelu`` (``channels`` parameters),
    ``hswish``, ``sigmoid``; ``None`` for none."""
    if name is None:
        return None
    if name == "prelu":
        return nn.PReLU(channels)
    factories = {
        "relu": lambda: nn.ReLU(inplace=True),
        "relu6": lambda: nn.ReLU6(inplace=True),
        "hswish": lambda: nn.Hardswish(inplace=True),
        "sigmoid": nn.Sigmoid,
    }
    if name not in factories:
        raise ValueError(f"unknown activation {name!r}")
    return factories[name]()


class ConvNormAct(nn.Sequential):
    """Conv2d -> optional BatchNorm2d -> optional activation (MMSegmentation's ``ConvModule``).

    Padding defaults to "same" for odd kernels (``dilation * (kernel_size - 1) // 2``); the
    convolution has a bias only when there is no norm, unless ``bias`` says otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm: bool = True,
        activation: str | None = "relu",
        bias: bool | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=(not norm) if bias is None else bias,
        )
        if norm:
            self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        activation_layer = act(activation, out_channels)
        if activation_layer is not None:
            self.act = activation_layer


class DepthwiseSeparableConv(nn.Sequential):
    """Depth-wise ``ConvNormAct`` then point-wise ``ConvNormAct`` (MMCV's
    ``DepthwiseSeparableConvModule``); ``dw_activation`` is the depth-wise one's activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dw_activation: str | None = "relu",
        activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            groups=in_channels,
            activation=dw_activation,
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, activation=activation)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion (unless ``expand_ratio == 1``), 3x3 depth-wise conv,
    linear 1x1 projection; identity shortcut when the shape is kept.
    ``(N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        dilation: int = 1,
        activation: str = "relu6",
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, activation=activation))
        layers += [
            ConvNormAct(
                hidden, hidden, 3, stride, dilation=dilation, groups=hidden, activation=activation
            ),
            ConvNormAct(hidden, out_channels, 1, activation=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class PyramidPooling(nn.ModuleList):
    """PSPNet's pooling pyramid: per scale, adaptive average pooling and a 1x1 ``ConvNormAct``,
    upsampled back (bilinear). ``(N, C, H, W) -> [(N, channels, H, W)] * len(pool_scales)``."""

    def __init__(
        self,
        pool_scales: Sequence[int],
        in_channels: int,
        channels: int,
        align_corners: bool = False,
    ) -> None:
        super().__init__(
            nn.Sequential(AdaptiveAvgPool2d(s), ConvNormAct(in_channels, channels, 1))
            for s in pool_scales
        )
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> list[Tensor]:
        size = x.shape[2:]
        return [
            F.interpolate(m(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for m in self
        ]


class FeatureIntermediatesMixin:
    """timm's ``forward_intermediates`` for segmentation backbones whose ``features(x)`` returns
    every map of ``feature_info`` at once (so ``features_only=True`` works with timm's
    ``feature_cls="getter"`` even when the stages do not form a plain sequence)."""

    feature_info: list[dict]

    def features(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The maps at ``indices`` (timm's convention: an int ``n`` is the last ``n``)."""
        from timm.models._features import feature_take_indices

        if output_fmt != "NCHW":
            raise ValueError(f"only NCHW output is supported, got {output_fmt!r}")
        take, _ = feature_take_indices(len(self.feature_info), indices)
        features = self.features(x)
        intermediates = [features[i] for i in take]
        return intermediates if intermediates_only else (features[-1], intermediates)

    def forward(self, x: Tensor) -> Tensor:
        """The last feature map (these backbones have no classifier)."""
        return self.features(x)[-1]


def seg_backbone_cfg(**kwargs) -> dict:
    """timm ``pretrained_cfg`` of a segmentation-only backbone (no classifier, no hub weights)."""
    return {
        "num_classes": 0,
        "input_size": (3, 512, 512),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "license": "apache-2.0",
        **kwargs,
    }


def build_seg_backbone(
    cls: type, variant: str, pretrained: bool, default_out_indices: Sequence[int], **kwargs
):
    """``timm.models.build_model_with_cfg`` for a :class:`FeatureIntermediatesMixin` model:
    ``features_only=True`` wraps it in timm's getter (``forward_intermediates``), returning
    ``out_indices`` (default ``default_out_indices``) in ``feature_info`` order."""
    from timm.models import build_model_with_cfg

    kwargs.pop("global_pool", None)
    return build_model_with_cfg(
        cls,
        variant,
        pretrained,
        feature_cfg={"feature_cls": "getter", "out_indices": tuple(default_out_indices)},
        **kwargs,
    )
