"""SegFormer's Mix Transformer (MiT-B0 ... B5), registered in timm's model registry.

Importing this module makes ``timm.create_model("mit_b0", features_only=True)`` work. The widths,
depths, heads, patch sizes and spatial-reduction ratios are those of MMSegmentation's
``MixVisionTransformer`` configs (and of the SegFormer paper), so parameter counts match theirs.
Attention uses ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU) instead of
``nn.MultiheadAttention``; the parameters are the same (separate ``q`` and ``kv`` projections).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

__all__ = ["MixVisionTransformer"]


class MixVisionTransformer(nn.Module):
    """Hierarchical transformer with overlapping patch embeddings and spatial-reduction attention.

    Input ``(N, 3, H, W)``; stage ``i`` outputs ``(N, embed_dims[i], H / 2**(i+2), W / 2**(i+2))``
    (rounded up). Any input size works: patch embeddings are padded convolutions.
    ``norm_eps`` is every LayerNorm's epsilon: 1e-6 as MMSegmentation and the reference code,
    1e-5 for weights from transformers' ``Segformer*`` models (``conf/convert/hf/segformer_*``).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        patch_sizes: Sequence[int] = (7, 3, 3, 3),
        strides: Sequence[int] = (4, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-6,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = embed_dims[-1]
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        stages, feature_info, reduction, prev_dims, cursor = [], [], 1, in_chans, 0
        for i, dims in enumerate(embed_dims):
            stages.append(
                MiTStage(
                    prev_dims,
                    dims,
                    depth=depths[i],
                    num_heads=num_heads[i],
                    patch_size=patch_sizes[i],
                    stride=strides[i],
                    sr_ratio=sr_ratios[i],
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[cursor : cursor + depths[i]],
                    norm_eps=norm_eps,
                )
            )
            reduction *= strides[i]
            feature_info.append({"num_chs": dims, "reduction": reduction, "module": f"stages.{i}"})
            prev_dims, cursor = dims, cursor + depths[i]
        self.stages = nn.Sequential(*stages)
        self.feature_info = feature_info
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean(dim=(2, 3)) if self.global_pool == "avg" else x
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


class MiTStage(nn.Module):
    """Overlapping patch embedding, ``depth`` transformer blocks, LayerNorm; NCHW in and out."""

    def __init__(
        self,
        in_dims: int,
        dims: int,
        depth: int,
        num_heads: int,
        patch_size: int,
        stride: int,
        sr_ratio: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_dims, dims, patch_size, stride, norm_eps)
        self.blocks = nn.ModuleList(
            MiTBlock(
                dims,
                num_heads,
                sr_ratio,
                mlp_ratio,
                qkv_bias,
                drop,
                attn_drop,
                drop_path[j],
                norm_eps,
            )
            for j in range(depth)
        )
        self.norm = nn.LayerNorm(dims, eps=norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x, hw = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, hw)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with ``kernel > stride`` (overlapping patches), then LayerNorm."""

    def __init__(
        self, in_chans: int, dims: int, patch_size: int, stride: int, norm_eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dims, patch_size, stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(dims, eps=norm_eps)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class MiTBlock(nn.Module):
    """Pre-norm block: efficient self-attention and Mix-FFN (a 3x3 depth-wise conv in the MLP)."""

    def __init__(
        self,
        dims: int,
        num_heads: int,
        sr_ratio: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dims, eps=norm_eps)
        self.attn = EfficientAttention(
            dims, num_heads, sr_ratio, qkv_bias, attn_drop, drop, norm_eps
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dims, eps=norm_eps)
        self.mlp = MixFFN(dims, int(dims * mlp_ratio), drop)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class EfficientAttention(nn.Module):
    """Multi-head attention whose keys/values come from a ``sr_ratio``-times downsampled map."""

    def __init__(
        self,
        dims: int,
        num_heads: int,
        sr_ratio: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(f"dims {dims} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dims, dims, bias=qkv_bias)
        self.kv = nn.Linear(dims, dims * 2, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dims, dims, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dims, eps=norm_eps)
        else:
            self.sr = None

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(b, n, heads, c // heads).transpose(1, 2)
        if self.sr is not None:
            y = x.transpose(1, 2).reshape(b, c, *hw)
            y = self.norm(self.sr(y).flatten(2).transpose(1, 2))
        else:
            y = x
        k, v = self.kv(y).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class MixFFN(nn.Module):
    """Linear -> 3x3 depth-wise conv (positional information) -> GELU -> Linear."""

    def __init__(self, dims: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = self.fc1(x)
        b, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, *hw)).flatten(2).transpose(1, 2)
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def mmseg_attention_to_segkit(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint transform (``after_rename``) for MMSegmentation's MiT, renamed to segkit keys.

    MMSegmentation's attention is an ``nn.MultiheadAttention`` whose packed ``in_proj`` (renamed
    ``attn.qkv.*``: rows ``[q; k; v]``) splits into ``attn.q`` and ``attn.kv`` (rows ``[k; v]``);
    its Mix-FFN uses 1x1 convolutions, whose ``(out, in, 1, 1)`` weights become ``Linear``'s
    ``(out, in)``.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if ".attn.qkv." in key:
            dims = value.shape[0] // 3
            out[key.replace(".attn.qkv.", ".attn.q.")] = value[:dims]
            out[key.replace(".attn.qkv.", ".attn.kv.")] = value[dims:]
        elif (".mlp.fc1.weight" in key or ".mlp.fc2.weight" in key) and value.ndim == 4:
            out[key] = value.flatten(1)
        else:
            out[key] = value
    return out


def transformers_attention_to_segkit(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint transform (``after_rename``) for transformers' Segformer encoder: the separate
    key and value projections (renamed ``attn.k.*`` / ``attn.v.*``) stack into ``attn.kv``."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if ".attn.v." in key:
            continue
        if ".attn.k." in key:
            other = state_dict[key.replace(".attn.k.", ".attn.v.")]
            out[key.replace(".attn.k.", ".attn.kv.")] = torch.cat([value, other], dim=0)
        else:
            out[key] = value
    return out


def convert_transformers_state_dict(state_dict: dict[str, Tensor], model: nn.Module) -> dict:
    """Map a transformers ``SegformerForImageClassification`` / ``SegformerModel`` state dict
    (e.g. the ``nvidia/mit-b0`` hub weights) onto :class:`MixVisionTransformer` names."""
    if not any(".patch_embeddings." in k for k in state_dict):
        return state_dict  # already in our layout
    out: dict[str, Tensor] = {}
    pending_kv: dict[str, dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        k = key.removeprefix("segformer.").removeprefix("encoder.")
        if k.startswith("classifier."):
            out[k.replace("classifier.", "head.")] = value
            continue
        parts = k.split(".")
        if parts[0] == "patch_embeddings":
            sub = {"proj": "proj", "layer_norm": "norm"}[parts[2]]
            out[f"stages.{parts[1]}.patch_embed.{sub}.{parts[3]}"] = value
        elif parts[0] == "layer_norm":
            out[f"stages.{parts[1]}.norm.{parts[2]}"] = value
        elif parts[0] == "block":
            prefix = f"stages.{parts[1]}.blocks.{parts[2]}"
            rest = ".".join(parts[3:])
            if rest.startswith("attention.self.key.") or rest.startswith("attention.self.value."):
                which, param = parts[5], parts[6]
                pending_kv.setdefault(f"{prefix}.attn.kv.{param}", {})[which] = value
                continue
            mapping = {
                "layer_norm_1.": "norm1.",
                "layer_norm_2.": "norm2.",
                "attention.self.query.": "attn.q.",
                "attention.self.sr.": "attn.sr.",
                "attention.self.layer_norm.": "attn.norm.",
                "attention.output.dense.": "attn.proj.",
                "mlp.dense1.": "mlp.fc1.",
                "mlp.dwconv.dwconv.": "mlp.dwconv.",
                "mlp.dense2.": "mlp.fc2.",
            }
            for src, dst in mapping.items():
                if rest.startswith(src):
                    out[f"{prefix}.{dst}{rest[len(src) :]}"] = value
                    break
    for key, kv in pending_kv.items():
        out[key] = torch.cat([kv["key"], kv["value"]], dim=0)
    if "head.weight" in out and getattr(model, "num_classes", 0) != out["head.weight"].shape[0]:
        out.pop("head.weight")
        out.pop("head.bias", None)
    return out


_VARIANTS: dict[str, dict[str, Any]] = {
    "mit_b0": {"embed_dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2)},
    "mit_b1": {"embed_dims": (64, 128, 320, 512), "depths": (2, 2, 2, 2)},
    "mit_b2": {"embed_dims": (64, 128, 320, 512), "depths": (3, 4, 6, 3)},
    "mit_b3": {"embed_dims": (64, 128, 320, 512), "depths": (3, 4, 18, 3)},
    "mit_b4": {"embed_dims": (64, 128, 320, 512), "depths": (3, 8, 27, 3)},
    "mit_b5": {"embed_dims": (64, 128, 320, 512), "depths": (3, 6, 40, 3)},
}


def _cfg(hub: str) -> dict[str, Any]:
    return {
        "hf_hub_id": hub,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stages.0.patch_embed.proj",
        "classifier": "head",
        "license": "other",
    }


default_cfgs = generate_default_cfgs(
    {f"{name}.in1k": _cfg(f"nvidia/{name.replace('_', '-')}") for name in _VARIANTS}
)


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    arch = {**_VARIANTS[variant], **kwargs}
    return build_model_with_cfg(
        MixVisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=convert_transformers_state_dict,
        feature_cfg={"flatten_sequential": True, "out_indices": (0, 1, 2, 3)},
        **arch,
    )


@register_model
def mit_b0(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b0", pretrained, **kwargs)


@register_model
def mit_b1(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b1", pretrained, **kwargs)


@register_model
def mit_b2(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b2", pretrained, **kwargs)


@register_model
def mit_b3(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b3", pretrained, **kwargs)


@register_model
def mit_b4(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b4", pretrained, **kwargs)


@register_model
def mit_b5(pretrained: bool = False, **kwargs: Any) -> MixVisionTransformer:
    return _create("mit_b5", pretrained, **kwargs)
