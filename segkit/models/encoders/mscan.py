"""SegNeXt's Multi-Scale Convolutional Attention Network (MSCAN-T/S/B/L), registered in timm.

Importing this module makes ``timm.create_model("mscan_t", features_only=True)`` work. Widths,
depths, MLP ratios and drop-path rates are those of MMSegmentation's ``segnext_mscan-*`` configs
(Guo et al., "SegNeXt: Rethinking Convolutional Attention Design for Semantic Segmentation",
NeurIPS 2022); module names follow MMSegmentation's ``MSCAN`` inside each stage, so converting its
checkpoints is a renaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

__all__ = ["MSCAN", "MSCABlock", "MSCAttention"]


class MSCAN(nn.Module):
    """Four stages of convolutional-attention blocks; BatchNorm inside, LayerNorm at stage ends.

    Input ``(N, 3, H, W)``; stage ``i`` outputs ``(N, embed_dims[i], H / 2**(i+2), W / 2**(i+2))``
    (rounded up); any input size works.

    Args:
        embed_dims, depths, mlp_ratios: per-stage widths, block counts and MLP expansions.
        attention_kernel_sizes: the depth-wise kernels of the attention: a square one, then the
            lengths of the ``1 x k`` / ``k x 1`` strip-conv pairs (MMSeg: ``(5, 7, 11, 21)``).
        drop_rate, drop_path_rate: MLP dropout and the stochastic-depth rate (linear in depth).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 256, 512),
        depths: Sequence[int] = (3, 4, 6, 3),
        mlp_ratios: Sequence[float] = (4, 4, 4, 4),
        attention_kernel_sizes: Sequence[int] = (5, 7, 11, 21),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = embed_dims[-1]
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        stages, feature_info, cursor = [], [], 0
        for i, dims in enumerate(embed_dims):
            embed = (
                StemConv(in_chans, dims)
                if i == 0
                else OverlapPatchEmbed(embed_dims[i - 1], dims, patch_size=3, stride=2)
            )
            stages.append(
                MSCANStage(
                    embed,
                    [
                        MSCABlock(
                            dims, attention_kernel_sizes, mlp_ratios[i], drop_rate, dpr[cursor + j]
                        )
                        for j in range(depths[i])
                    ],
                    dims,
                )
            )
            feature_info.append(
                {"num_chs": dims, "reduction": 2 ** (i + 2), "module": f"stages.{i}"}
            )
            cursor += depths[i]
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


class StemConv(nn.Module):
    """Two stride-2 3x3 convs (to half, then full width) with BN, GELU between: stride 4."""

    def __init__(self, in_chans: int, dims: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, dims // 2, 3, 2, 1),
            nn.BatchNorm2d(dims // 2),
            nn.GELU(),
            nn.Conv2d(dims // 2, dims, 3, 2, 1),
            nn.BatchNorm2d(dims),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with ``kernel > stride`` (overlapping patches), then BatchNorm."""

    def __init__(self, in_chans: int, dims: int, patch_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dims, patch_size, stride, padding=patch_size // 2)
        self.norm = nn.BatchNorm2d(dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


class MSCANStage(nn.Module):
    """Patch embedding, blocks, and a LayerNorm over channels; NCHW in and out."""

    def __init__(self, patch_embed: nn.Module, blocks: Sequence[nn.Module], dims: int) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(dims)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.patch_embed(x))
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class MSCAttention(nn.Module):
    """Multi-scale convolutional attention: a square depth-wise conv, then parallel depth-wise
    strip-conv pairs (``1 x k`` then ``k x 1``) summed with it, mixed by a 1x1 conv; the result
    multiplies the input. ``(N, C, H, W)`` -> same."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (5, 7, 11, 21)) -> None:
        super().__init__()
        k0 = kernel_sizes[0]
        self.conv0 = nn.Conv2d(channels, channels, k0, padding=k0 // 2, groups=channels)
        for i, k in enumerate(kernel_sizes[1:]):
            self.add_module(
                f"conv{i}_1",
                nn.Conv2d(channels, channels, (1, k), padding=(0, k // 2), groups=channels),
            )
            self.add_module(
                f"conv{i}_2",
                nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), groups=channels),
            )
        self.num_strips = len(kernel_sizes) - 1
        self.conv3 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        attn = self.conv0(x)
        total = attn
        for i in range(self.num_strips):
            strip = getattr(self, f"conv{i}_2")(getattr(self, f"conv{i}_1")(attn))
            total = total + strip
        return self.conv3(total) * x


class MSCASpatialAttention(nn.Module):
    """1x1 conv, GELU, :class:`MSCAttention`, 1x1 conv, plus its own shortcut."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MSCAttention(channels, kernel_sizes)
        self.proj_2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class Mlp(nn.Module):
    """1x1 conv, 3x3 depth-wise conv, GELU, dropout, 1x1 conv, dropout."""

    def __init__(self, dims: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dims, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dims, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class MSCABlock(nn.Module):
    """Pre-norm (BatchNorm) block: attention and MLP branches, each scaled per channel by a
    learnt layer scale (initialised to 0.01) and stochastic depth. ``(N, C, H, W)`` -> same."""

    def __init__(
        self,
        dims: int,
        kernel_sizes: Sequence[int],
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dims)
        self.attn = MSCASpatialAttention(dims, kernel_sizes)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dims)
        self.mlp = Mlp(dims, int(dims * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dims,), 1e-2))
        self.layer_scale_2 = nn.Parameter(torch.full((dims,), 1e-2))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


def _init_weights(m: nn.Module) -> None:
    """MMSegmentation's MSCAN init: truncated normal linears, fan-out normal convs."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm | nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def convert_mmseg_mscan_state_dict(state_dict: dict[str, Tensor], model: nn.Module) -> dict:
    """Map MMSegmentation's MSCAN keys (``patch_embed1``, ``block1.0``, ``norm1``; e.g. its
    ImageNet ``mscan_*.pth`` files) onto :class:`MSCAN` names (``stages.0....``)."""
    state_dict = state_dict.get("state_dict", state_dict)
    if not any(k.startswith("patch_embed1.") for k in state_dict):
        return state_dict  # already in our layout
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        for prefix, name in (("patch_embed", "patch_embed"), ("block", "blocks"), ("norm", "norm")):
            if head.startswith(prefix) and head[len(prefix) :].isdigit():
                out[f"stages.{int(head[len(prefix) :]) - 1}.{name}.{rest}"] = value
                break
        else:
            if head == "head" and getattr(model, "num_classes", 0) == value.shape[0]:
                out[key] = value
    return out


_VARIANTS: dict[str, dict[str, Any]] = {
    "mscan_t": {"embed_dims": (32, 64, 160, 256), "depths": (3, 3, 5, 2), "drop_path_rate": 0.1},
    "mscan_s": {"embed_dims": (64, 128, 320, 512), "depths": (2, 2, 4, 2), "drop_path_rate": 0.1},
    "mscan_b": {"embed_dims": (64, 128, 320, 512), "depths": (3, 3, 12, 3), "drop_path_rate": 0.1},
    "mscan_l": {"embed_dims": (64, 128, 320, 512), "depths": (3, 5, 27, 3), "drop_path_rate": 0.3},
}

_URLS = {
    "mscan_t": "mscan_t_20230227-119e8c9f.pth",
    "mscan_s": "mscan_s_20230227-f33ccdf2.pth",
    "mscan_b": "mscan_b_20230227-3ab7d230.pth",
    "mscan_l": "mscan_l_20230227-cef260d4.pth",
}


def _cfg(file: str) -> dict[str, Any]:
    return {
        "url": f"https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segnext/{file}",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stages.0.patch_embed.proj.0",
        "classifier": "head",
        "license": "apache-2.0",
    }


default_cfgs = generate_default_cfgs({f"{name}.in1k": _cfg(f) for name, f in _URLS.items()})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> MSCAN:
    arch = {"mlp_ratios": (8, 8, 4, 4), **_VARIANTS[variant], **kwargs}
    return build_model_with_cfg(
        MSCAN,
        variant,
        pretrained,
        pretrained_filter_fn=convert_mmseg_mscan_state_dict,
        feature_cfg={"flatten_sequential": True, "out_indices": (0, 1, 2, 3)},
        **arch,
    )


@register_model
def mscan_t(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    return _create("mscan_t", pretrained, **kwargs)


@register_model
def mscan_s(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    return _create("mscan_s", pretrained, **kwargs)


@register_model
def mscan_b(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    return _create("mscan_b", pretrained, **kwargs)


@register_model
def mscan_l(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    return _create("mscan_l", pretrained, **kwargs)
