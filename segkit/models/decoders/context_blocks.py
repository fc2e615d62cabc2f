"""Blocks shared by the context-aggregation decoders (ANN, DANet, ISANet, NonLocal, CCNet, ...):
MMSegmentation's generic self-attention block and an FCN head with a context module inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU

__all__ = ["ContextFCNDecoder", "ConvBN", "SelfAttentionBlock"]


class ConvBN(ConvBNReLU):
    """Conv2d (no bias) -> BatchNorm2d, no activation (MMSegmentation's ``ConvModule`` with
    ``act_cfg=None``; parameter names ``conv``, ``bn``)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.act = nn.Identity()


def _projection(in_channels: int, channels: int, num_convs: int, norm: bool) -> nn.Module:
    """``num_convs`` 1x1 convs: ConvBNReLU with ``norm``, else plain biased convs."""
    layers = [
        ConvBNReLU(c, channels) if norm else nn.Conv2d(c, channels, 1)
        for c in [in_channels] + [channels] * (num_convs - 1)
    ]
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class SelfAttentionBlock(nn.Module):
    """Dot-product attention of query positions over key positions (MMSegmentation's
    ``SelfAttentionBlock``, the same parameters).

    Args:
        key_in_channels, query_in_channels: widths of the key/value and the query maps.
        channels: width of the query/key projections (and of the value when ``with_out``).
        out_channels: output width.
        share_key_query: one projection for queries and keys.
        key_downsample: module applied to the projected keys and values (e.g. pyramid pooling
            to ``(N, C, L)``), or None.
        key_query_num_convs, value_out_num_convs: 1x1 convs per projection.
        key_query_norm, value_out_norm: ConvBNReLU projections instead of biased convs.
        matmul_norm: scale the similarities by ``channels ** -0.5``.
        with_out: project the attended values from ``channels`` to ``out_channels``.

    Shapes: ``query (N, Cq, H, W)``, ``key (N, Ck, h, w)`` -> ``(N, out_channels, H, W)``.
    """

    def __init__(
        self,
        key_in_channels: int,
        query_in_channels: int,
        channels: int,
        out_channels: int,
        share_key_query: bool = False,
        key_downsample: nn.Module | None = None,
        key_query_num_convs: int = 1,
        value_out_num_convs: int = 1,
        key_query_norm: bool = True,
        value_out_norm: bool = False,
        matmul_norm: bool = True,
        with_out: bool = True,
    ) -> None:
        super().__init__()
        if share_key_query and key_in_channels != query_in_channels:
            raise ValueError("share_key_query needs key_in_channels == query_in_channels")
        self.channels = channels
        self.key_project = _projection(
            key_in_channels, channels, key_query_num_convs, key_query_norm
        )
        self.query_project = (
            self.key_project
            if share_key_query
            else _projection(query_in_channels, channels, key_query_num_convs, key_query_norm)
        )
        self.value_project = _projection(
            key_in_channels,
            channels if with_out else out_channels,
            value_out_num_convs,
            value_out_norm,
        )
        self.out_project = (
            _projection(channels, out_channels, value_out_num_convs, value_out_norm)
            if with_out
            else None
        )
        self.key_downsample = key_downsample
        self.matmul_norm = matmul_norm

    def forward(self, query_feats: Tensor, key_feats: Tensor) -> Tensor:
        n, _, h, w = query_feats.shape
        query = self.query_project(query_feats).flatten(2).transpose(1, 2)  # (N, HW, C)
        key, value = self.key_project(key_feats), self.value_project(key_feats)
        if self.key_downsample is not None:
            key, value = self.key_downsample(key), self.key_downsample(value)
        key = key.flatten(2)  # (N, C, L)
        value = value.flatten(2).transpose(1, 2)  # (N, L, Cv)
        sim = torch.matmul(query, key)
        if self.matmul_norm:
            sim = sim * self.channels**-0.5
        context = torch.matmul(F.softmax(sim, dim=-1), value)  # (N, HW, Cv)
        context = context.transpose(1, 2).reshape(n, -1, h, w)
        if self.out_project is not None:
            context = self.out_project(context)
        return context


class ContextFCNDecoder(nn.Module):
    """MMSegmentation's ``FCNHead`` with two 3x3 convs and a context module between them
    (the layout of CCNet, NonLocal, DNLNet and GCNet heads): ``conv -> context -> conv``, then
    concatenated with the input and fused by a third 3x3 conv (``concat_input``).

    Subclasses build ``self.context`` (``(N, channels, h, w) -> same``) and may override
    :meth:`apply_context`.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        kernel_size: int = 3,
        concat_input: bool = True,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.convs = nn.Sequential(
            ConvBNReLU(c_in, channels, kernel_size), ConvBNReLU(channels, channels, kernel_size)
        )
        self.conv_cat = ConvBNReLU(c_in + channels, channels, kernel_size) if concat_input else None
        self.context: nn.Module = nn.Identity()

    def apply_context(self, x: Tensor) -> Tensor:
        return self.context(x)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        out = self.convs[1](self.apply_context(self.convs[0](x)))
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out
