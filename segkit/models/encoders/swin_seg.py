"""Swin Transformer for dense prediction at any input size, as the original Swin segmentation
code and MMSegmentation run it; registered in timm (``swin_seg_tiny_patch4_window7`` ...).

It is timm's ``SwinTransformer`` (same modules, parameter names and pretrained weights) with
three behaviours changed so that the outputs equal MMSegmentation's ``SwinTransformer`` at any
input size, not only at multiples of ``32 * window_size``:

* windows are padded *before* the cyclic shift (timm shifts first, then pads, which moves the
  padding into other windows and changes every output when a stage's size is not a multiple
  of the window);
* every stage partitions into full windows and shifts, even when the feature map is smaller
  than a window (timm shrinks the window and drops the shift there: ``always_partition``);
* the patch embedding pads the image at the bottom/right to a multiple of the patch size.

MMSegmentation's per-stage output LayerNorms (``norm0`` ... ``norm3``) are not part of the
encoder: :class:`segkit.models.necks.level_norm.LevelNorm` applies them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.swin_transformer import (
    SwinTransformer,
    SwinTransformerBlock,
    checkpoint_filter_fn,
    window_partition,
    window_reverse,
)
from torch import Tensor

__all__ = ["PadFirstSwinBlock", "SegSwinTransformer"]


class PadFirstSwinBlock(SwinTransformerBlock):
    """timm's Swin block with (shifted) window attention computed as in the original Swin and
    MMSegmentation: pad to whole windows, then shift, with the shift mask of the padded map."""

    def _attn(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)`` window attention (without the residual)."""
        _, H, W, C = x.shape
        wh, ww = self.window_size
        x = F.pad(x, (0, 0, 0, (ww - W % ww) % ww, 0, (wh - H % wh) % wh))
        _, Hp, Wp, _ = x.shape
        shift = tuple(self.shift_size)
        mask = None
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = self.get_attn_mask(x)
        windows = window_partition(x, self.window_size).view(-1, self.window_area, C)
        windows = self.attn(windows, mask=mask).view(-1, wh, ww, C)
        x = window_reverse(windows, self.window_size, Hp, Wp)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :H, :W, :].contiguous()


class SegSwinTransformer(SwinTransformer):
    """timm's ``SwinTransformer`` with MMSegmentation's behaviour at any input size (see the
    module docstring). Input ``(N, 3, H, W)``; with ``features_only`` stage ``i`` gives
    ``(N, embed_dim * 2**i, ceil(H / 2**(i+2)), ceil(W / 2**(i+2)))``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict_img_size", False)
        kwargs.setdefault("always_partition", True)
        kwargs.setdefault("embed_layer", partial(PatchEmbed, dynamic_img_pad=True))
        super().__init__(**kwargs)
        for stage in self.layers:
            for block in stage.blocks:
                block.__class__ = PadFirstSwinBlock  # same state, pad-first ``_attn``


def _cfg(hub_id: str) -> dict[str, Any]:
    return {
        "hf_hub_id": hub_id,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embed.proj",
        "classifier": "head.fc",
    }


default_cfgs = generate_default_cfgs(
    {
        "swin_seg_tiny_patch4_window7.ms_in1k": _cfg("timm/swin_tiny_patch4_window7_224.ms_in1k"),
        "swin_seg_small_patch4_window7.ms_in1k": _cfg("timm/swin_small_patch4_window7_224.ms_in1k"),
        "swin_seg_base_patch4_window7.ms_in1k": _cfg("timm/swin_base_patch4_window7_224.ms_in1k"),
        "swin_seg_base_patch4_window7.ms_in22k_ft_in1k": _cfg(
            "timm/swin_base_patch4_window7_224.ms_in22k_ft_in1k"
        ),
    }
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> SegSwinTransformer:
    depths = kwargs.get("depths", (2, 2, 6, 2))
    out_indices = kwargs.pop("out_indices", tuple(range(len(depths))))
    return build_model_with_cfg(
        SegSwinTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={"feature_cls": "getter", "out_indices": out_indices},
        **kwargs,
    )


@register_model
def swin_seg_tiny_patch4_window7(pretrained: bool = False, **kwargs: Any) -> SegSwinTransformer:
    """Swin-T (96 channels, depths 2-2-6-2, window 7), MMSegmentation's ``swin-tiny``."""
    args = {"patch_size": 4, "window_size": 7, "embed_dim": 96, "depths": (2, 2, 6, 2)}
    args["num_heads"] = (3, 6, 12, 24)
    return _create("swin_seg_tiny_patch4_window7", pretrained, **{**args, **kwargs})


@register_model
def swin_seg_small_patch4_window7(pretrained: bool = False, **kwargs: Any) -> SegSwinTransformer:
    """Swin-S (96 channels, depths 2-2-18-2, window 7), MMSegmentation's ``swin-small``."""
    args = {"patch_size": 4, "window_size": 7, "embed_dim": 96, "depths": (2, 2, 18, 2)}
    args["num_heads"] = (3, 6, 12, 24)
    return _create("swin_seg_small_patch4_window7", pretrained, **{**args, **kwargs})


@register_model
def swin_seg_base_patch4_window7(pretrained: bool = False, **kwargs: Any) -> SegSwinTransformer:
    """Swin-B (128 channels, depths 2-2-18-2, window 7), MMSegmentation's ``swin-base``."""
    args = {"patch_size": 4, "window_size": 7, "embed_dim": 128, "depths": (2, 2, 18, 2)}
    args["num_heads"] = (4, 8, 16, 32)
    return _create("swin_seg_base_patch4_window7", pretrained, **{**args, **kwargs})
