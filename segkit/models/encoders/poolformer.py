"""PoolFormer (Yu et al., MetaFormer is Actually What You Need for Vision, CVPR 2022) as a
dense-prediction backbone, as MMSegmentation runs it (mmpretrain's ``PoolFormer`` with
``out_indices=(0, 2, 4, 6)``); registered in timm (``poolformer_s12_seg`` ...).

It is timm's ``MetaFormer`` built as timm's ``poolformer_*`` (same modules, parameter names and
ImageNet weights: 7x7/4 stem conv, 3x3/2 downsampling convs, GroupNorm(1) blocks with average
pooling token mixers, GELU MLPs of 1x1 convs and layer scales) plus:

* a GroupNorm(1) on each stage output (``out_norms``; mmpretrain's ``norm0/2/4/6``), which the
  segmentation model sees and timm's classifier does not;
* optionally a frozen stem (``frozen_stem``): mmpretrain's ``frozen_stages=0``, the setting of
  MMSegmentation's configs, still freezes the patch embedding (``requires_grad=False``).
"""

from __future__ import annotations

from typing import Any

from timm.layers import GroupNorm1
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.metaformer import MetaFormer, checkpoint_filter_fn
from torch import Tensor, nn

__all__ = ["SegPoolFormer"]


class SegPoolFormer(MetaFormer):
    """timm's PoolFormer (``MetaFormer``) with normalised stage outputs (module docstring).

    Args:
        frozen_stem: freeze the stem conv's parameters (MMSegmentation's recipe).
        **kwargs: timm ``MetaFormer`` arguments (``depths``, ``dims`` ...).

    Input ``(N, 3, H, W)``; with ``features_only`` stage ``i`` gives ``(N, dims[i], H_i, W_i)``
    with ``H_0 = floor((H - 3) / 4) + 1`` and ``H_{i+1} = ceil(H_i / 2)``.
    """

    def __init__(self, frozen_stem: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dims = [info["num_chs"] for info in self.feature_info]
        self.out_norms = nn.ModuleList(GroupNorm1(d) for d in dims)
        if frozen_stem:
            self.stem.requires_grad_(False)

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Normalised stage outputs ``(N, dims[i], H_i, W_i)`` selected by ``indices``."""
        assert output_fmt == "NCHW", "Output shape must be NCHW."
        take, max_index = feature_take_indices(len(self.stages), indices)
        last = max_index if stop_early or intermediates_only else len(self.stages) - 1
        x = self.stem(x)
        intermediates = []
        for i in range(last + 1):
            x = self.stages[i](x)
            if i in take:
                intermediates.append(self.out_norms[i](x))
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """timm's pruning; the output norms of stages not returned are dropped as well."""
        take = super().prune_intermediate_layers(indices, prune_norm, prune_head)
        for i in range(len(self.out_norms)):
            if i not in take:
                self.out_norms[i] = nn.Identity()
        return take


def _filter_fn(state: dict[str, Tensor], model: SegPoolFormer) -> dict[str, Tensor]:
    """timm/original ImageNet weights -> this model; output norms start at identity."""
    state = checkpoint_filter_fn(state, model)
    for name, tensor in model.out_norms.state_dict().items():
        state.setdefault(f"out_norms.{name}", tensor)
    return state


default_cfgs = generate_default_cfgs(
    {
        f"poolformer_{arch}_seg.sail_in1k": {
            "hf_hub_id": f"timm/poolformer_{arch}.sail_in1k",
            "num_classes": 1000,
            "input_size": (3, 224, 224),
            "crop_pct": 0.9 if arch.startswith("s") else 0.95,
            "interpolation": "bicubic",
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
            "first_conv": "stem.conv",
            "classifier": "head.fc",
        }
        for arch in ("s12", "s24", "s36", "m36", "m48")
    }
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> SegPoolFormer:
    args = {
        "downsample_norm": None,
        "mlp_act": nn.GELU,
        "mlp_bias": True,
        "norm_layers": GroupNorm1,
        "res_scale_init_values": None,
        "use_mlp_head": False,
    }
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        SegPoolFormer,
        variant,
        pretrained,
        pretrained_filter_fn=_filter_fn,
        feature_cfg={"feature_cls": "getter", "out_indices": out_indices},
        **{**args, **kwargs},
    )


_S = (64, 128, 320, 512)
_M = (96, 192, 384, 768)


@register_model
def poolformer_s12_seg(pretrained: bool = False, **kwargs: Any) -> SegPoolFormer:
    """PoolFormer-S12 (widths 64-512, depths 2-2-6-2, layer scale 1e-5)."""
    args = {"depths": (2, 2, 6, 2), "dims": _S, "layer_scale_init_values": 1e-5}
    return _create("poolformer_s12_seg", pretrained, **{**args, **kwargs})


@register_model
def poolformer_s24_seg(pretrained: bool = False, **kwargs: Any) -> SegPoolFormer:
    """PoolFormer-S24 (widths 64-512, depths 4-4-12-4, layer scale 1e-5)."""
    args = {"depths": (4, 4, 12, 4), "dims": _S, "layer_scale_init_values": 1e-5}
    return _create("poolformer_s24_seg", pretrained, **{**args, **kwargs})


@register_model
def poolformer_s36_seg(pretrained: bool = False, **kwargs: Any) -> SegPoolFormer:
    """PoolFormer-S36 (widths 64-512, depths 6-6-18-6, layer scale 1e-6)."""
    args = {"depths": (6, 6, 18, 6), "dims": _S, "layer_scale_init_values": 1e-6}
    return _create("poolformer_s36_seg", pretrained, **{**args, **kwargs})


@register_model
def poolformer_m36_seg(pretrained: bool = False, **kwargs: Any) -> SegPoolFormer:
    """PoolFormer-M36 (widths 96-768, depths 6-6-18-6, layer scale 1e-6)."""
    args = {"depths": (6, 6, 18, 6), "dims": _M, "layer_scale_init_values": 1e-6}
    return _create("poolformer_m36_seg", pretrained, **{**args, **kwargs})


@register_model
def poolformer_m48_seg(pretrained: bool = False, **kwargs: Any) -> SegPoolFormer:
    """PoolFormer-M48 (widths 96-768, depths 8-8-24-8, layer scale 1e-6)."""
    args = {"depths": (8, 8, 24, 8), "dims": _M, "layer_scale_init_values": 1e-6}
    return _create("poolformer_m48_seg", pretrained, **{**args, **kwargs})
