"""MobileNetV2 / V3 with MMSegmentation's output-stride-8 dilation scheme, registered in timm as
``mobilenetv2_100_d8`` (and the half-width ``mobilenetv2_050_d8``), ``mobilenetv3_large_100_d8``
and ``mobilenetv3_small_100_d8``.

The layers are timm's own (``mobilenetv2_100``; ``tf_mobilenetv3_large_100`` /
``tf_mobilenetv3_small_100``, whose TensorFlow "same" padding of strided convs and BN
``eps=1e-3`` are those of MMSegmentation's ``MobileNetV3`` with ``Conv2dAdaptivePadding``). Only
the dilations differ from timm's ``output_stride=8``, which dilates every block after the first
of a stage. MMSegmentation instead

- MobileNetV2 (``strides=(1, 2, 2, 1, 1, 1, 1)``, ``dilations=(1, 1, 1, 2, 2, 4, 4)``):
  dilates only the *first* block of each of the last four stages;
- MobileNetV3: dilates every block from the one whose stride it removed, that one included
  (large: layers 7-12 by 2, 13-15 by 4; small: layers 4-8 by 2, 9-11 by 4).

so those strides and dilations are set on timm's depth-wise convs after construction (as
MMSegmentation itself does for MobileNetV3) and ``feature_info`` reports the resulting stride.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.layers import Conv2dSame
from timm.models import register_model
from torch import nn

__all__ = ["DILATIONS"]

# (stage, block) -> (stride, dilation) of timm's depth-wise conv, reproducing MMSegmentation.
DILATIONS: dict[str, dict[tuple[int, int], tuple[int, int]]] = {
    "mobilenetv2_100": {(3, 0): (1, 2), (4, 0): (1, 2), (5, 0): (1, 4), (6, 0): (1, 4)},
    "mobilenetv2_050": {(3, 0): (1, 2), (4, 0): (1, 2), (5, 0): (1, 4), (6, 0): (1, 4)},
    "tf_mobilenetv3_large_100": {
        (3, 0): (1, 2),
        (3, 1): (1, 2),
        (3, 2): (1, 2),
        (3, 3): (1, 2),
        (4, 0): (1, 2),
        (4, 1): (1, 2),
        (5, 0): (1, 4),
        (5, 1): (1, 4),
        (5, 2): (1, 4),
    },
    "tf_mobilenetv3_small_100": {
        (2, 0): (1, 2),
        (2, 1): (1, 2),
        (2, 2): (1, 2),
        (3, 0): (1, 2),
        (3, 1): (1, 2),
        (4, 0): (1, 4),
        (4, 1): (1, 4),
        (4, 2): (1, 4),
    },
}


def _set_stride_dilation(conv: nn.Conv2d, stride: int, dilation: int) -> None:
    """Re-stride / re-dilate a conv in place; static padding follows ("same" for odd kernels),
    timm's dynamic-"same" ``Conv2dSame`` computes its padding at run time."""
    conv.stride = (stride, stride)
    conv.dilation = (dilation, dilation)
    if not isinstance(conv, Conv2dSame):
        pad = dilation * (conv.kernel_size[0] - 1) // 2
        conv.padding = (pad, pad)


def _create_d8(base: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    if kwargs.pop("output_stride", None) not in (None, 8):
        raise ValueError(f"{base}_d8 has output stride 8")
    model = timm.create_model(base, pretrained=pretrained, **kwargs)
    for (stage, block), (stride, dilation) in DILATIONS[base].items():
        _set_stride_dilation(model.blocks[stage][block].conv_dw, stride, dilation)
    info = model.feature_info.info if hasattr(model.feature_info, "info") else model.feature_info
    for entry in info:
        entry["reduction"] = min(entry["reduction"], 8)
    return model


@register_model
def mobilenetv2_100_d8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``mobilenetv2_100`` dilated as MMSegmentation's ``MobileNetV2`` in the
    ``mobilenet-v2-d8`` configs; features ``[16 /2, 24 /4, 32 /8, 96 /8, 320 /8]``."""
    return _create_d8("mobilenetv2_100", pretrained, **kwargs)


@register_model
def mobilenetv2_050_d8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Half-width ``mobilenetv2_100_d8`` (MMSegmentation's ``widen_factor=0.5``)."""
    return _create_d8("mobilenetv2_050", pretrained, **kwargs)


@register_model
def mobilenetv3_large_100_d8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``tf_mobilenetv3_large_100`` dilated as MMSegmentation's ``MobileNetV3(arch=
    'large')``; features ``[16 /2, 24 /4, 40 /8, 112 /8, 960 /8]``."""
    return _create_d8("tf_mobilenetv3_large_100", pretrained, **kwargs)


@register_model
def mobilenetv3_small_100_d8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``tf_mobilenetv3_small_100`` dilated as MMSegmentation's ``MobileNetV3(arch=
    'small')``; features ``[16 /2, 16 /4, 24 /8, 48 /8, 576 /8]``."""
    return _create_d8("tf_mobilenetv3_small_100", pretrained, **kwargs)
