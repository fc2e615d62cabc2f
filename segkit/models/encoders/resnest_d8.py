"""ResNeSt-101 dilated to output stride 8 as MMSegmentation's ``ResNeSt`` backbone (and the
official ResNeSt code) does it, registered in timm as ``resnest101e_d8``.

timm's ``resnest101e`` is MMSegmentation's ``ResNeSt(depth=101, stem_channels=128, radix=2,
reduction_factor=4, avg_down_stride=True)`` layer for layer: deep stem 64-64-128, split-attention
3x3 convs (``max(width * radix / 4, 32)`` attention channels), a 3x3 average pool after ``conv2``
in strided blocks, average-pool shortcuts; the parameter names match too. One thing differs
once dilated: for a stage whose stride became a dilation, timm's shortcut starts with a 2x2
"same" average pool (``AvgPool2dSame(2, 1)``), MMSegmentation's (kernel = stride = 1) with none.
Here that pool is removed; it has no parameters, so weights stay interchangeable.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.layers import AvgPool2dSame
from timm.models import register_model
from torch import nn

__all__ = ["drop_dilated_shortcut_pools"]


def drop_dilated_shortcut_pools(model: nn.Module) -> None:
    """Replace the stride-1 average pool at the head of each dilated stage's shortcut by an
    identity, in place (``layer1..4`` of a timm ResNet / ResNeSt, ``features_only`` or not)."""
    for i in range(1, 5):
        layer = getattr(model, f"layer{i}", None)
        down = getattr(layer[0], "downsample", None) if layer is not None else None
        if isinstance(down, nn.Sequential) and isinstance(down[0], AvgPool2dSame):
            down[0] = nn.Identity()


@register_model
def resnest101e_d8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``resnest101e`` at ``output_stride`` 8 (default; 16 also works) with
    MMSegmentation's shortcuts; features ``[64 /2, 256 /4, 512 /8, 1024 /8, 2048 /8]``."""
    kwargs["output_stride"] = kwargs.get("output_stride") or 8
    model = timm.create_model("resnest101e", pretrained=pretrained, **kwargs)
    drop_dilated_shortcut_pools(model)
    return model
