"""HRNetV2 for segmentation: timm's HRNet returning its four raw branch outputs, with the
segmentation variant's bilinear fusion, registered in timm's model registry.

``timm.create_model("hrnet_seg_w18", features_only=True)`` returns the four parallel branches of
the last stage (strides 4, 8, 16, 32; widths C, 2C, 4C, 8C), as MMSegmentation's ``HRNet`` and the
HRNet-Semantic-Segmentation code do, instead of timm's default "incre" (classification-head)
features. Modules and parameter names are timm's (``hrnet_w18`` ... ImageNet weights load), with
one change in every multi-resolution fusion: a lower-resolution branch is upsampled bilinearly
(``align_corners=False``) by its scale factor and, if the sizes still differ, resized to the exact
size of the branch it joins, where timm's classification HRNet upsamples by nearest neighbour.
This is MMSegmentation's fusion, and it makes any input size work (not only multiples of 32).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._builder import pretrained_cfg_for_features
from timm.models.hrnet import (
    HighResolutionModule,
    HighResolutionNetFeatures,
    SequentialList,
    block_types_dict,
    cfg_cls,
)
from torch import Tensor

__all__ = ["HRNetSegFeatures", "HRNetSegModule"]


class HRNetSegModule(HighResolutionModule):
    """timm's ``HighResolutionModule`` (same parameters) with MMSegmentation's fusion: each
    output branch ``i`` sums, in branch order, the branch itself, strided 3x3 convs of the finer
    branches and 1x1 conv + BN of the coarser ones, bilinearly upsampled to its size; then ReLU.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.num_branches > 1:  # drop the nearest-neighbour Upsample after 1x1 conv + BN
            for i, fuse_outer in enumerate(self.fuse_layers):
                for j in range(i + 1, self.num_branches):
                    fuse_outer[j] = fuse_outer[j][:2]

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        """``num_branches`` maps ``(N, C_b, H_b, W_b)`` -> the fused maps (same shapes)."""
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [branch(t) for branch, t in zip(self.branches, x)]
        fused = []
        for i, fuse_outer in enumerate(self.fuse_layers):
            y = x[i]
            for j in range(self.num_branches):
                if j < i:
                    y = y + fuse_outer[j](x[j])
                elif j > i:
                    y = y + _upsample(fuse_outer[j](x[j]), 2 ** (j - i), x[i].shape[2:])
            fused.append(self.fuse_act(y))
        return fused


def _upsample(x: Tensor, factor: int, size: Any) -> Tensor:
    """Bilinear upsampling by ``factor``, then to ``size`` (which differs for odd sizes)."""
    x = F.interpolate(
        x, size=(x.shape[2] * factor, x.shape[3] * factor), mode="bilinear", align_corners=False
    )
    # Unconditional, so that exported graphs take odd and even sizes alike: resizing to the
    # same size is an exact copy in PyTorch (and in ONNX Resize).
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class HRNetSegFeatures(HighResolutionNetFeatures):
    """timm's HRNet feature extractor built from :class:`HRNetSegModule` stages.

    Input ``(N, 3, H, W)``; output: for each of ``out_indices`` (default ``(1, 2, 3, 4)``) a map:
    ``0``: the first stem conv ``(N, 64, H/2, W/2)``; ``b = 1..4``: branch ``b`` of the last
    stage ``(N, C * 2**(b-1), H / 2**(b+1), W / 2**(b+1))`` (sizes rounded up).
    """

    def _make_stage(
        self,
        layer_config: dict[str, Any],
        num_in_chs: list[int],
        multi_scale_output: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> tuple[SequentialList, list[int]]:
        modules = []
        for i in range(layer_config["num_modules"]):
            modules.append(
                HRNetSegModule(
                    layer_config["num_branches"],
                    block_types_dict[layer_config["block_type"]],
                    layer_config["num_blocks"],
                    num_in_chs,
                    layer_config["num_channels"],
                    layer_config["fuse_method"],
                    multi_scale_output or i < layer_config["num_modules"] - 1,
                    device=device,
                    dtype=dtype,
                )
            )
            num_in_chs = modules[-1].get_num_in_chs()
        return SequentialList(*modules), num_in_chs


def _cfg(hub: str) -> dict[str, Any]:
    return {
        "hf_hub_id": hub,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "conv1",
        "classifier": "classifier",
        "license": "mit",
    }


_TIMM_ARCH = {
    "hrnet_seg_w18_small_v2": "hrnet_w18_small_v2",
    "hrnet_seg_w18": "hrnet_w18",
    "hrnet_seg_w48": "hrnet_w48",
}

default_cfgs = generate_default_cfgs(
    {f"{name}.ms_in1k": _cfg(f"timm/{arch}.ms_in1k") for name, arch in _TIMM_ARCH.items()}
)


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> HRNetSegFeatures:
    kwargs.pop("features_only", None)  # this model always returns feature maps
    kwargs.setdefault("out_indices", (1, 2, 3, 4))
    kwargs.setdefault("feature_location", "")
    model = build_model_with_cfg(
        HRNetSegFeatures,
        variant,
        pretrained,
        model_cfg=cfg_cls[_TIMM_ARCH[variant]],
        pretrained_strict=False,  # ImageNet checkpoints also hold the classification head
        kwargs_filter=("num_classes", "global_pool"),
        **kwargs,
    )
    model.pretrained_cfg = model.default_cfg = pretrained_cfg_for_features(model.default_cfg)
    return model


@register_model
def hrnet_seg_w18_small_v2(pretrained: bool = False, **kwargs: Any) -> HRNetSegFeatures:
    """HRNetV2-W18-Small (MMSegmentation's ``hr18s``)."""
    return _create("hrnet_seg_w18_small_v2", pretrained, **kwargs)


@register_model
def hrnet_seg_w18(pretrained: bool = False, **kwargs: Any) -> HRNetSegFeatures:
    """HRNetV2-W18 (MMSegmentation's ``hr18``)."""
    return _create("hrnet_seg_w18", pretrained, **kwargs)


@register_model
def hrnet_seg_w48(pretrained: bool = False, **kwargs: Any) -> HRNetSegFeatures:
    """HRNetV2-W48 (MMSegmentation's ``hr48``)."""
    return _create("hrnet_seg_w48", pretrained, **kwargs)
