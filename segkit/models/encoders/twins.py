"""Twins-PCPVT and Twins-SVT for dense prediction at any input size, as MMSegmentation's
``PCPVT`` / ``SVT`` backbones; registered in timm (``twins_pcpvt_small_seg``,
``twins_svt_small_seg`` ...).

It is timm's ``Twins`` (same modules, parameter names and ImageNet weights) with the
behaviours of MMSegmentation's version:

* each patch embedding pads its input at the bottom/right to a multiple of its stride (timm
  floors the size, dropping the last rows/columns);
* every LayerNorm has eps 1e-5 (timm's blocks use 1e-6);
* SVT's locally-grouped attention masks the zero padding of its windows, exactly as
  MMSegmentation (and the original Twins ``forward_mask``) does: the mask is built with the
  slices ``[-pad_b:]`` / ``[:, -pad_r:]``, which select the *whole* map when a pad is 0, so it
  only takes effect when a map is padded both at the bottom and on the right; otherwise the
  padded (zero) tokens are attended, as in timm;
* optional per-stage output LayerNorms (``norm_after_stage``, MMSegmentation's ``norm_list``,
  used by the SVT configs); there is no final norm;
* in training, stochastic depth is applied twice to the branches where MMSegmentation applies
  it twice (its attention/FFN modules drop the path and so does the layer around them): the
  MLP of every block and the global (sub-sampled) attention (``double_drop_path``).

MMSegmentation packs the global attention's q/k/v projections in one ``in_proj`` where timm
has ``q`` and ``kv``: :func:`split_gsa_in_proj` converts the checkpoints.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.twins import LocallyGroupedAttn, PatchEmbed, Twins
from torch import Tensor, nn

__all__ = ["MaskedLocallyGroupedAttn", "PaddedPatchEmbed", "SegTwins", "split_gsa_in_proj"]


class PaddedPatchEmbed(PatchEmbed):
    """timm's Twins patch embedding that pads the bottom/right of ``(N, C, H, W)`` to a multiple
    of the patch size first (MMSegmentation's ``padding='corner'``); returns the normed tokens
    ``(N, ceil(H/p) * ceil(W/p), D)`` and the grid size ``(ceil(H/p), ceil(W/p))``."""

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        ph, pw = self.patch_size
        H, W = x.shape[-2:]
        x = F.pad(x, (0, (pw - W % pw) % pw, 0, (ph - H % ph) % ph))
        x = self.proj(x)
        size = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), size


class MaskedLocallyGroupedAttn(LocallyGroupedAttn):
    """timm's locally-grouped (window) self-attention with MMSegmentation's padding mask (see the
    module docstring): ``(B, H*W, C)`` tokens of an ``(H, W)`` grid -> ``(B, H*W, C)``."""

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        B, N, C = x.shape
        H, W = size
        ws = self.ws
        pad_r, pad_b = (ws - W % ws) % ws, (ws - H % ws) % ws
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = H + pad_b, W + pad_r
        gh, gw = Hp // ws, Wp // ws
        x = x.reshape(B, gh, ws, gw, ws, C).transpose(2, 3)
        qkv = self.qkv(x).reshape(B, gh * gw, ws * ws, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B, windows, heads, ws*ws, d)
        mask = None
        if pad_r > 0 and pad_b > 0:
            padded = torch.ones(Hp, Wp, dtype=torch.bool, device=x.device)
            padded[:H, :W] = False
            padded = padded.reshape(gh, ws, gw, ws).transpose(1, 2).reshape(gh * gw, 1, ws * ws)
            differs = padded.transpose(1, 2) != padded  # (windows, ws*ws, ws*ws)
            mask = torch.zeros(differs.shape, dtype=q.dtype, device=x.device)
            mask = mask.masked_fill(differs, -1000.0).unsqueeze(1)  # (windows, 1, L, L)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attn_drop.p if self.training else 0.0
            )
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if mask is not None:
                attn = attn + mask
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
        x = x.transpose(2, 3).reshape(B, gh, gw, ws, ws, C).transpose(2, 3)
        x = x.reshape(B, Hp, Wp, C)[:, :H, :W].reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class SegTwins(Twins):
    """timm's ``Twins`` with MMSegmentation's behaviour at any input size (module docstring).

    Args:
        norm_after_stage: a LayerNorm on each stage's output tokens (``stage_norms``).
        double_drop_path: drop paths twice where MMSegmentation does (module docstring).
        **kwargs: timm ``Twins`` arguments (``embed_dims``, ``depths``, ``wss`` ...).

    Input ``(N, 3, H, W)``; with ``features_only`` stage ``i`` gives
    ``(N, embed_dims[i], ceil(H / 2**(i+2)), ceil(W / 2**(i+2)))`` (each stage rounds up).
    """

    def __init__(
        self, norm_after_stage: bool = False, double_drop_path: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("norm_layer", partial(nn.LayerNorm, eps=1e-5))
        super().__init__(**kwargs)
        for embed in self.patch_embeds:
            embed.__class__ = PaddedPatchEmbed  # same parameters, padded forward
        for stage in self.blocks:
            for block in stage:
                local = isinstance(block.attn, LocallyGroupedAttn)
                if local:
                    block.attn.__class__ = MaskedLocallyGroupedAttn
                if double_drop_path and isinstance(block.drop_path2, DropPath):
                    p = block.drop_path2.drop_prob
                    block.drop_path2 = nn.Sequential(DropPath(p), DropPath(p))
                    if not local:
                        block.drop_path1 = nn.Sequential(DropPath(p), DropPath(p))
        self.stage_norms = (
            nn.ModuleList(nn.LayerNorm(d, eps=1e-5) for d in self.embed_dims)
            if norm_after_stage
            else None
        )

    def _stages(self, x: Tensor, last: int) -> list[Tensor]:
        """Run stages ``0..last``; their ``(N, C_i, H_i, W_i)`` outputs."""
        B = x.shape[0]
        outs = []
        for i in range(last + 1):
            x, size = self.patch_embeds[i](x)
            x = self.pos_drops[i](x)
            for j, block in enumerate(self.blocks[i]):
                x = block(x, size)
                if j == 0:
                    x = self.pos_block[i](x, size)  # conditional position encoding (PEG)
            if self.stage_norms is not None:
                x = self.stage_norms[i](x)
            x = x.reshape(B, *size, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Stage outputs ``(N, C_i, H_i, W_i)`` selected by ``indices`` (timm's convention)."""
        assert output_fmt == "NCHW", "Output shape for Twins must be NCHW."
        take, max_index = feature_take_indices(len(self.blocks), indices)
        last = max_index if stop_early or intermediates_only else len(self.blocks) - 1
        outs = self._stages(x, last)
        intermediates = [outs[i] for i in take]
        if intermediates_only:
            return intermediates
        final = self.norm(outs[-1].flatten(2).transpose(1, 2))
        return final, intermediates

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> normed last-stage tokens ``(N, H_3 * W_3, C_3)``."""
        return self.norm(self._stages(x, len(self.blocks) - 1)[-1].flatten(2).transpose(1, 2))


def split_gsa_in_proj(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """MMSegmentation's packed global-attention projection ``<p>.attn.in_proj_{weight,bias}``
    ``(3C, C)`` / ``(3C,)`` (rows q, k, v) -> timm's ``<p>.q`` ``(C, C)`` and ``<p>.kv``
    ``(2C, C)`` (rows k, v). Run after renaming ``.attn.attn.`` to ``.attn.``."""
    out: dict[str, Tensor] = {}
    pattern = re.compile(r"\.in_proj_(weight|bias)$")
    for key, value in state.items():
        match = pattern.search(key)
        if match is None:
            out[key] = value
            continue
        stem, kind = key[: match.start()], match.group(1)
        dim = value.shape[0] // 3
        out[f"{stem}.q.{kind}"], out[f"{stem}.kv.{kind}"] = value[:dim], value[dim:]
    return out


def _filter_fn(state: dict[str, Tensor], model: SegTwins) -> dict[str, Tensor]:
    """timm ImageNet weights -> this model: keep the stage norms at their initial identity."""
    state = dict(state)
    if model.stage_norms is not None:
        for name, tensor in model.stage_norms.state_dict().items():
            state.setdefault(f"stage_norms.{name}", tensor)
    return state


def _cfg(tag: str) -> dict[str, Any]:
    return {
        "hf_hub_id": f"timm/{tag}",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embeds.0.proj",
        "classifier": "head",
    }


default_cfgs = generate_default_cfgs(
    {
        f"twins_{kind}_{size}_seg.in1k": _cfg(f"twins_{kind}_{size}.in1k")
        for kind in ("pcpvt", "svt")
        for size in ("small", "base", "large")
    }
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> SegTwins:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        SegTwins,
        variant,
        pretrained,
        pretrained_filter_fn=_filter_fn,
        feature_cfg={"feature_cls": "getter", "out_indices": out_indices},
        **kwargs,
    )


_PCPVT = {"embed_dims": (64, 128, 320, 512), "num_heads": (1, 2, 5, 8), "mlp_ratios": (8, 8, 4, 4)}


@register_model
def twins_pcpvt_small_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-PCPVT-S (widths 64-128-320-512, depths 3-4-6-3), MMSegmentation's ``pcpvt-s``."""
    args = {**_PCPVT, "depths": (3, 4, 6, 3), "sr_ratios": (8, 4, 2, 1)}
    return _create("twins_pcpvt_small_seg", pretrained, **{**args, **kwargs})


@register_model
def twins_pcpvt_base_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-PCPVT-B (widths 64-128-320-512, depths 3-4-18-3), MMSegmentation's ``pcpvt-b``."""
    args = {**_PCPVT, "depths": (3, 4, 18, 3), "sr_ratios": (8, 4, 2, 1)}
    return _create("twins_pcpvt_base_seg", pretrained, **{**args, **kwargs})


@register_model
def twins_pcpvt_large_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-PCPVT-L (widths 64-128-320-512, depths 3-8-27-3), MMSegmentation's ``pcpvt-l``."""
    args = {**_PCPVT, "depths": (3, 8, 27, 3), "sr_ratios": (8, 4, 2, 1)}
    return _create("twins_pcpvt_large_seg", pretrained, **{**args, **kwargs})


def _svt(dim: int, heads: int, depths: tuple[int, ...]) -> dict[str, Any]:
    return {
        "embed_dims": tuple(dim * 2**i for i in range(4)),
        "num_heads": tuple(heads * 2**i for i in range(4)),
        "mlp_ratios": (4, 4, 4, 4),
        "depths": depths,
        "wss": (7, 7, 7, 7),
        "sr_ratios": (8, 4, 2, 1),
        "norm_after_stage": True,
    }


@register_model
def twins_svt_small_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-SVT-S (widths 64-512, depths 2-2-10-4, window 7, stage norms), MMSeg's ``svt-s``."""
    return _create("twins_svt_small_seg", pretrained, **{**_svt(64, 2, (2, 2, 10, 4)), **kwargs})


@register_model
def twins_svt_base_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-SVT-B (widths 96-768, depths 2-2-18-2, window 7, stage norms), MMSeg's ``svt-b``."""
    return _create("twins_svt_base_seg", pretrained, **{**_svt(96, 3, (2, 2, 18, 2)), **kwargs})


@register_model
def twins_svt_large_seg(pretrained: bool = False, **kwargs: Any) -> SegTwins:
    """Twins-SVT-L (widths 128-1024, depths 2-2-18-2, window 7, stage norms), MMSeg's ``svt-l``."""
    return _create("twins_svt_large_seg", pretrained, **{**_svt(128, 4, (2, 2, 18, 2)), **kwargs})
