"""ResNets that keep their strides but dilate their later stages, registered in timm as
``resnet50c_dilated`` and ``resnet101c_dilated``: MMSegmentation's ``ResNetV1c`` with
``strides=(1, 2, 2, 2)`` and ``dilations=(1, 1, 2, 4)``, the backbone of its FastFCN configs.

timm's ``output_stride`` removes strides to dilate; here the layers are timm's ``resnet*c``
(deep stem, Bottleneck blocks, the same parameters) and only the dilation of each Bottleneck's
3x3 ``conv2`` is set after construction. With ``contract_dilation`` (MMSegmentation's default in
these configs) the first block of a stage whose dilation ``d > 1`` uses ``d // 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
from timm.models import register_model
from torch import nn

__all__ = ["dilate_resnet"]


def dilate_resnet(
    model: nn.Module, dilations: Sequence[int], contract_dilation: bool = True
) -> None:
    """Set the dilation (and "same" padding) of every Bottleneck ``conv2`` of ``layer1..4``
    in place, stage ``i`` by ``dilations[i]``; strides are left as they are."""
    if len(dilations) != 4:
        raise ValueError(f"dilations needs one entry per stage, got {dilations}")
    for i, d in enumerate(dilations):
        layer = getattr(model, f"layer{i + 1}", None)
        if layer is None:  # a stage cut off by features_only / out_indices
            continue
        for b, block in enumerate(layer):
            if not hasattr(block, "conv3"):
                raise TypeError("only Bottleneck ResNets (timm's BasicBlock dilates conv1)")
            dd = d // 2 if (b == 0 and contract_dilation and d > 1) else d
            block.conv2.dilation = (dd, dd)
            block.conv2.padding = (dd, dd)


def _create(
    base: str,
    pretrained: bool,
    dilations: Sequence[int] = (1, 1, 2, 4),
    contract_dilation: bool = True,
    **kwargs: Any,
) -> nn.Module:
    if kwargs.pop("output_stride", None) not in (None, 32):
        raise ValueError(f"{base}_dilated keeps output stride 32; set dilations instead")
    model = timm.create_model(base, pretrained=pretrained, **kwargs)
    dilate_resnet(model, dilations, contract_dilation)
    return model


@register_model
def resnet50c_dilated(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``resnet50c`` (= ResNetV1c-50) at output stride 32 with stages 3-4 dilated 2 and 4
    (``dilations``, ``contract_dilation`` kwargs); features ``[256 /4, 512 /8, 1024 /16, 2048 /32]``."""
    return _create("resnet50c", pretrained, **kwargs)


@register_model
def resnet101c_dilated(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``resnet101c`` (= ResNetV1c-101), dilated as :func:`resnet50c_dilated`."""
    return _create("resnet101c", pretrained, **kwargs)
