"""Plain ViT encoders for segmentation (SETR, Segmenter, DPT), registered in timm's registry.

timm's :class:`~timm.models.vision_transformer.VisionTransformer` with what MMSegmentation's
``VisionTransformer`` backbone does differently, so converted MMSegmentation weights give the
same features at any input size:

- any input size: the input is padded to a multiple of the patch size at the bottom/right
  (MMSegmentation's ``patch_pad='corner'``) and the position embedding is resampled to the token
  grid with ``pos_embed_interp`` (``"bilinear"`` for SETR, ``"bicubic"`` otherwise) and no
  anti-aliasing (timm resamples bicubic with anti-aliasing);
- ``patch_bias=False``: MMSegmentation's patch embedding convolution has no bias;
- ``final_norm`` normalises the last block's output only, ``feature_norm`` every returned one
  (DINOv2 for Depth Anything, ``segkit/models/encoders/dinov2.py``), and ``output_cls_token``
  returns ``(feature_map, cls_token)`` pairs (DPT's readout).

Names: ``vit_{tiny,small,base,large}_patch16_seg`` (widths of DeiT-Ti/S, ViT-B, ViT-L).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from timm.layers import LayerNorm, resample_abs_pos_embed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import FeatureGetterNet
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["SegVisionTransformer"]


class SegVisionTransformer(VisionTransformer):
    """timm's ViT taking any input size, with MMSegmentation's position-embedding resampling.

    Args:
        pos_embed_interp: interpolation of the learned position embedding to the token grid
            when it differs from ``img_size / patch_size`` (``"bilinear"`` or ``"bicubic"``).
        patch_bias: bias in the patch-embedding convolution (MMSegmentation: none).
        norm_eps: epsilon of the LayerNorms (MMSegmentation's ``LN`` default: 1e-5; SETR and
            Segmenter configs, like timm: 1e-6).
        output_cls_token: features are ``(map, cls)`` pairs, ``cls`` of shape ``(N, C)``.
        final_norm: apply the final LayerNorm to the last block's output.
        feature_norm: apply the final LayerNorm to every returned block output instead (DINOv2's
            ``get_intermediate_layers(norm=True)``, read by Depth Anything); the last block's
            output is then normalised only when returned.
        **kwargs: :class:`VisionTransformer` arguments (``dynamic_img_size`` and
            ``dynamic_img_pad`` are forced on).
    """

    def __init__(
        self,
        pos_embed_interp: str = "bicubic",
        patch_bias: bool = True,
        output_cls_token: bool = False,
        norm_eps: float = 1e-6,
        feature_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.update(dynamic_img_size=True, dynamic_img_pad=True)
        kwargs.setdefault("norm_layer", partial(LayerNorm, eps=norm_eps))
        super().__init__(**kwargs)
        self.pos_embed_interp = pos_embed_interp
        self.output_cls_token = output_cls_token
        self.feature_norm = feature_norm
        if output_cls_token and self.cls_token is None:
            raise ValueError("output_cls_token needs class_token=True")
        if not patch_bias:
            self.patch_embed.proj.bias = None

    def _pos_embed(self, x: Tensor) -> Tensor:
        """Patch tokens ``(N, h, w, C)`` -> ``(N, prefix + h*w, C)`` with position embedding."""
        b, h, w, c = x.shape
        pos_embed = resample_abs_pos_embed(
            self.pos_embed,
            new_size=(h, w),
            old_size=self.patch_embed.grid_size,
            num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
            interpolation=self.pos_embed_interp,
            antialias=False,
        )
        x = x.view(b, -1, c)
        prefix = [] if self.cls_token is None else [self.cls_token.expand(b, -1, -1)]
        if self.no_embed_class:
            return self.pos_drop(torch.cat([*prefix, x + pos_embed], dim=1))
        return self.pos_drop(torch.cat([*prefix, x], dim=1) + pos_embed)

    def forward_seg_features(
        self, x: Tensor, indices: Sequence[int]
    ) -> list[Tensor | tuple[Tensor, Tensor]]:
        """Images ``(N, 3, H, W)`` -> the outputs of blocks ``indices`` as maps
        ``(N, C, ceil(H/p), ceil(W/p))`` (or ``(map, cls (N, C))`` pairs)."""
        b, _, height, width = x.shape
        h, w = self.patch_embed.dynamic_feat_size((height, width))
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        last, outs = len(self.blocks) - 1, []
        for i, block in enumerate(self.blocks[: max(indices) + 1]):
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i == last and not self.feature_norm:
                x = self.norm(x)
            if i in indices:
                y = self.norm(x) if self.feature_norm else x
                tokens = y[:, self.num_prefix_tokens :]
                fmap = tokens.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
                outs.append((fmap, y[:, 0]) if self.output_cls_token else fmap)
        return outs


class SegViTFeatures(FeatureGetterNet):
    """``features_only`` wrapper: the outputs of the chosen blocks (see
    :meth:`SegVisionTransformer.forward_seg_features`)."""

    def __init__(self, model: SegVisionTransformer, out_indices: Any = 4, **kwargs: Any) -> None:
        kwargs.pop("output_fmt", None)
        super().__init__(model, out_indices=out_indices, norm=True, **kwargs)

    def forward(self, x: Tensor) -> list[Tensor | tuple[Tensor, Tensor]]:
        return self.model.forward_seg_features(x, self.out_indices)


def _filter_fn(state: dict[str, Tensor], model: SegVisionTransformer) -> dict[str, Tensor]:
    """timm ImageNet weights -> this model: drop what it lacks (patch bias, class token)."""
    if model.cls_token is None and "cls_token" in state:
        state = dict(state)
        del state["cls_token"]
        state["pos_embed"] = state["pos_embed"][:, 1:]
    state = checkpoint_filter_fn(state, model)
    if model.patch_embed.proj.bias is None:
        state.pop("patch_embed.proj.bias", None)
    return state


def _cfg(hub_id: str) -> dict[str, Any]:
    return {
        "hf_hub_id": hub_id,
        "num_classes": 0,
        "input_size": (3, 384, 384),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }


_ARCH = {
    "vit_tiny_patch16_seg": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_seg": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_seg": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_seg": dict(embed_dim=1024, depth=24, num_heads=16),
}

default_cfgs = generate_default_cfgs(
    {
        "vit_tiny_patch16_seg.augreg_in21k_ft_in1k": _cfg(
            "timm/vit_tiny_patch16_384.augreg_in21k_ft_in1k"
        ),
        "vit_small_patch16_seg.augreg_in21k_ft_in1k": _cfg(
            "timm/vit_small_patch16_384.augreg_in21k_ft_in1k"
        ),
        "vit_base_patch16_seg.augreg_in21k_ft_in1k": _cfg(
            "timm/vit_base_patch16_384.augreg_in21k_ft_in1k"
        ),
        "vit_large_patch16_seg.augreg_in21k_ft_in1k": _cfg(
            "timm/vit_large_patch16_384.augreg_in21k_ft_in1k"
        ),
    }
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> SegVisionTransformer:
    arch = {"patch_size": 16, "num_classes": 0, **_ARCH[variant], **kwargs}
    return build_model_with_cfg(
        SegVisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=_filter_fn,
        feature_cfg={"feature_cls": SegViTFeatures, "out_indices": (arch["depth"] - 1,)},
        **arch,
    )


@register_model
def vit_tiny_patch16_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_tiny_patch16_seg", pretrained, **kwargs)


@register_model
def vit_small_patch16_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_small_patch16_seg", pretrained, **kwargs)


@register_model
def vit_base_patch16_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_base_patch16_seg", pretrained, **kwargs)


@register_model
def vit_large_patch16_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_large_patch16_seg", pretrained, **kwargs)


def mmseg_vit_drop_class_token(
    state: dict[str, Tensor], prefix: str = "backbone."
) -> dict[str, Tensor]:
    """Conversion step for MMSegmentation ViTs with ``with_cls_token=False`` (SETR-MLA): their
    class token and its position-embedding slot never reach the output; this model has neither."""
    state = dict(state)
    state.pop(f"{prefix}cls_token", None)
    state[f"{prefix}pos_embed"] = state[f"{prefix}pos_embed"][:, 1:]
    return state


def hf_vit_fuse_qkv(
    state: dict[str, Tensor], pattern: str = ".attention.attention."
) -> dict[str, Tensor]:
    """Conversion step for transformers' ViTs (DPT): their separate ``query``/``key``/``value``
    projections (keys containing ``pattern``) become timm's packed ``qkv`` (rows q, k, v)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if pattern in key and key.rsplit(".", 2)[-2] in ("key", "value"):
            continue
        if pattern in key and key.rsplit(".", 2)[-2] == "query":
            prefix, _, kind = key.rsplit(".", 2)
            parts = [state[f"{prefix}.{name}.{kind}"] for name in ("query", "key", "value")]
            out[f"{prefix}.qkv.{kind}"] = torch.cat(parts, dim=0)
        else:
            out[key] = value
    return out
