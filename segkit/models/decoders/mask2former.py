"""Mask2Former's pixel decoder: a multi-scale deformable-attention encoder on the three coarsest
encoder levels, then an FPN step onto the finest level, which gives the per-pixel mask
embeddings (MMDetection's ``MSDeformAttnPixelDecoder``; its parameter names)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.detr_layers import FFN, SinePositionalEncoding
from segkit.models.ops.ms_deform_attn import MultiScaleDeformableAttention

__all__ = ["ConvGN", "MSDeformAttnPixelDecoder", "MaskFeatures"]


class MaskFeatures(NamedTuple):
    """What a mask-classification pixel decoder hands to its transformer head.

    ``mask``: per-pixel embeddings ``(N, C, H/stride, W/stride)``; ``multi_scale``: the maps the
    transformer decoder attends to (coarsest first, each ``(N, C', h_i, w_i)``); ``stride``: the
    output stride of ``mask``.
    """

    mask: Tensor
    multi_scale: list[Tensor]
    stride: int


class ConvGN(nn.Sequential):
    """Conv2d -> GroupNorm(32) [-> ReLU], as mmcv's ``ConvModule`` with GN (names ``conv``, ``gn``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        bias: bool = False,
        act: bool = False,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.gn = nn.GroupNorm(num_groups, out_channels)
        if act:
            self.act = nn.ReLU(inplace=True)


class DeformEncoderLayer(nn.Module):
    """Deformable DETR encoder layer (post-norm): deformable self-attention over all levels, FFN."""

    def __init__(
        self, embed_dims: int, num_heads: int, num_levels: int, num_points: int, ffn_channels: int
    ) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(
            embed_dims, num_heads, num_levels, num_points
        )
        self.ffn = FFN(embed_dims, ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(2))

    def forward(
        self, x: Tensor, pos: Tensor, reference_points: Tensor, shapes: list[tuple[int, int]]
    ) -> Tensor:
        """``x``, ``pos``: ``(N, S, C)``; ``reference_points (N, S, levels, 2)`` -> ``(N, S, C)``."""
        x = self.norms[0](self.self_attn(x, x, reference_points, shapes, query_pos=pos))
        return self.norms[1](self.ffn(x))


class DeformEncoder(nn.Module):
    """A stack of :class:`DeformEncoderLayer` (MMDetection's ``encoder.layers``)."""

    def __init__(self, num_layers: int, **layer_kwargs: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformEncoderLayer(**layer_kwargs) for _ in range(num_layers))

    def forward(self, x: Tensor, *args) -> Tensor:
        for layer in self.layers:
            x = layer(x, *args)
        return x


class MSDeformAttnPixelDecoder(nn.Module):
    """Pixel decoder with multi-scale deformable attention (Mask2Former).

    Args:
        in_channels, in_strides: the encoder's levels (finest first), given by the segmentor.
        channels: width of every level and of the mask embeddings (256).
        num_encoder_levels: coarsest levels fed to the deformable encoder (3).
        num_layers: deformable encoder layers (6).
        num_heads, num_points: deformable attention heads and points per level (8, 4).
        ffn_channels: encoder FFN width (1024).
        num_outs: levels returned for the transformer decoder (3, coarsest first).

    ``forward(features) -> MaskFeatures``; the mask embeddings are at ``in_strides[0]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        num_encoder_levels: int = 3,
        num_layers: int = 6,
        num_heads: int = 8,
        num_points: int = 4,
        ffn_channels: int = 1024,
        num_outs: int = 3,
    ) -> None:
        super().__init__()
        self.in_strides = list(in_strides)
        self.num_inputs = len(in_channels)
        self.num_encoder_levels = num_encoder_levels
        self.num_outs = num_outs
        self.channels = channels
        self.output_stride = in_strides[0]
        # coarsest level first
        self.input_convs = nn.ModuleList(
            ConvGN(in_channels[self.num_inputs - 1 - i], channels, bias=True)
            for i in range(num_encoder_levels)
        )
        self.encoder = DeformEncoder(
            num_layers,
            embed_dims=channels,
            num_heads=num_heads,
            num_levels=num_encoder_levels,
            num_points=num_points,
            ffn_channels=ffn_channels,
        )
        self.position_encoding = SinePositionalEncoding(channels // 2, normalize=True)
        self.level_encoding = nn.Embedding(num_encoder_levels, channels)
        # FPN levels below the encoder's, indexed by encoder level (coarse to fine, as MMDetection)
        fpn_levels = range(self.num_inputs - num_encoder_levels - 1, -1, -1)
        self.lateral_convs = nn.ModuleList(ConvGN(in_channels[i], channels) for i in fpn_levels)
        self.output_convs = nn.ModuleList(
            ConvGN(channels, channels, 3, act=True) for _ in fpn_levels
        )
        self.mask_feature = nn.Conv2d(channels, channels, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.input_convs:
            nn.init.xavier_uniform_(m.conv.weight)
            nn.init.zeros_(m.conv.bias)
        for m in [*self.lateral_convs, *self.output_convs]:
            nn.init.kaiming_uniform_(m.conv.weight, a=1)  # caffe2 xavier
        nn.init.kaiming_uniform_(self.mask_feature.weight, a=1)
        nn.init.zeros_(self.mask_feature.bias)
        nn.init.normal_(self.level_encoding.weight)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        for m in self.encoder.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.reset_parameters()

    def forward(self, features: Sequence[Tensor]) -> MaskFeatures:
        """Encoder maps (finest first) -> :class:`MaskFeatures`."""
        n = features[0].shape[0]
        tokens, positions, references, shapes = [], [], [], []
        for i in range(self.num_encoder_levels):
            level = self.num_inputs - 1 - i
            feat = features[level]
            h, w = feat.shape[-2:]
            no_pad = feat.new_zeros((n, h, w), dtype=torch.bool)
            pos = self.position_encoding(no_pad).to(feat.dtype)
            pos = pos + self.level_encoding.weight[i].view(1, -1, 1, 1)
            # pixel centres, normalised; the same point on every level (no padding)
            ys = (torch.arange(h, device=feat.device, dtype=feat.dtype) + 0.5) / h
            xs = (torch.arange(w, device=feat.device, dtype=feat.dtype) + 0.5) / w
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            references.append(torch.stack([xx.flatten(), yy.flatten()], -1))
            tokens.append(self.input_convs[i](feat).flatten(2).transpose(1, 2))
            positions.append(pos.flatten(2).transpose(1, 2))
            shapes.append((h, w))
        ref = torch.cat(references)[None, :, None].expand(n, -1, self.num_encoder_levels, -1)
        memory = self.encoder(torch.cat(tokens, 1), torch.cat(positions, 1), ref, shapes)
        memory = memory.transpose(1, 2)
        outs = [
            m.reshape(n, -1, h, w)
            for m, (h, w) in zip(memory.split([h * w for h, w in shapes], -1), shapes, strict=True)
        ]
        for i in range(self.num_inputs - self.num_encoder_levels - 1, -1, -1):
            lateral = self.lateral_convs[i](features[i])
            up = F.interpolate(
                outs[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
            outs.append(self.output_convs[i](lateral + up))
        return MaskFeatures(self.mask_feature(outs[-1]), outs[: self.num_outs], self.output_stride)
