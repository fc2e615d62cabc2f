"""DINOv2 ViTs (Oquab et al., 2023) for dense prediction, registered in timm's registry.

timm's DINOv2 architecture (patch 14, LayerScale, a 37x37 position grid for 518x518 inputs) as a
:class:`~segkit.models.encoders.vit.SegVisionTransformer`, whose ``features_only`` outputs are
what Depth Anything's DPT neck reads (transformers' ``Dinov2Backbone`` with ``apply_layernorm``):

- the chosen blocks' patch tokens, each normalised by the final LayerNorm (``feature_norm``), as
  maps ``(N, C, ceil(H/14), ceil(W/14))``; the class token is dropped (readout "ignore");
- the position embedding resampled to the token grid bicubic, without anti-aliasing, by output
  size (transformers >= 4.45 and timm; DINOv2's original code added 0.1 to the scale factor);
- inputs padded at the bottom/right to a multiple of 14 (transformers crops the remainder:
  the two agree on multiples of 14, the sizes Depth Anything runs at).

Names: ``vit_{small,base,large}_patch14_dinov2_seg``; ``pretrained=True`` loads timm's DINOv2
weights (``lvd142m``).
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import checkpoint_filter_fn

from segkit.models.encoders.vit import SegVisionTransformer, SegViTFeatures

__all__: list[str] = []

_ARCH = {
    "vit_small_patch14_dinov2_seg": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch14_dinov2_seg": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch14_dinov2_seg": dict(embed_dim=1024, depth=24, num_heads=16),
}


def _cfg(hub_id: str) -> dict[str, Any]:
    return {
        "hf_hub_id": hub_id,
        "num_classes": 0,
        "input_size": (3, 518, 518),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }


default_cfgs = generate_default_cfgs(
    {f"{name}.lvd142m": _cfg(f"timm/{name.removesuffix('_seg')}.lvd142m") for name in _ARCH}
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> SegVisionTransformer:
    arch = {
        "img_size": 518,
        "patch_size": 14,
        "init_values": 1e-5,  # LayerScale (the checkpoints' gammas replace it)
        "num_classes": 0,
        "feature_norm": True,
        **_ARCH[variant],
        **kwargs,
    }
    return build_model_with_cfg(
        SegVisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={"feature_cls": SegViTFeatures, "out_indices": (arch["depth"] - 1,)},
        **arch,
    )


@register_model
def vit_small_patch14_dinov2_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_small_patch14_dinov2_seg", pretrained, **kwargs)


@register_model
def vit_base_patch14_dinov2_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_base_patch14_dinov2_seg", pretrained, **kwargs)


@register_model
def vit_large_patch14_dinov2_seg(pretrained: bool = False, **kwargs: Any) -> SegVisionTransformer:
    return _create("vit_large_patch14_dinov2_seg", pretrained, **kwargs)
