"""DETR-style transformer blocks for the mask-classification models (MaskFormer, Mask2Former).

Parameter names follow mmcv / MMDetection (``attn.in_proj_weight``, ``ffn.layers.0.0``,
``norms.0``, ...), so their checkpoints convert by renaming prefixes. All tensors are
batch-first: sequences are ``(N, L, C)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "FFN",
    "DetrDecoderLayer",
    "Mask2FormerDecoderLayer",
    "MultiheadAttention",
    "SinePositionalEncoding",
]


class SinePositionalEncoding(nn.Module):
    """DETR's 2-D sine positional encoding: ``num_feats`` channels for y, then ``num_feats`` for x.

    Args:
        num_feats: channels per axis (the encoding has ``2 * num_feats``).
        temperature: wavelength base.
        normalize: scale cumulative positions to ``[0, scale]`` (DETR with ``normalize=True``).
        scale: the range after normalisation (``2 * pi``).
        eps: added to the normaliser.
        offset: added to the positions before normalising.
    """

    def __init__(
        self,
        num_feats: int = 128,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float = 2 * math.pi,
        eps: float = 1e-6,
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_feats, self.temperature = num_feats, temperature
        self.normalize, self.scale, self.eps, self.offset = normalize, scale, eps, offset

    def forward(self, mask: Tensor) -> Tensor:
        """``mask (N, H, W)`` bool, True at padding -> encoding ``(N, 2 * num_feats, H, W)``."""
        not_mask = (~mask.bool()).to(torch.float32)
        y = not_mask.cumsum(1)
        x = not_mask.cumsum(2)
        if self.normalize:
            y = (y + self.offset) / (y[:, -1:, :] + self.eps) * self.scale
            x = (x + self.offset) / (x[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_feats)
        n, h, w = mask.shape
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).view(
            n, h, w, -1
        )
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).view(
            n, h, w, -1
        )
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with positional encodings added to query and key (not value),
    output dropout and a residual, as mmcv's ``MultiheadAttention``.

    Args:
        embed_dims: width.
        num_heads: heads.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout on the output before the residual.
    """

    def __init__(
        self, embed_dims: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=attn_drop, batch_first=True
        )
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        query_pos: Tensor | None = None,
        key_pos: Tensor | None = None,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """``query (N, Q, C)``, ``key``/``value (N, K, C)`` -> ``(N, Q, C)``.

        ``attn_mask``: ``(N * heads, Q, K)`` bool, True where attending is not allowed.
        ``key_padding_mask``: ``(N, K)`` bool, True at padded keys.
        """
        q = query if query_pos is None else query + query_pos
        k = key if key_pos is None else key + key_pos
        out = self.attn(
            q, k, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )[0]
        return query + self.proj_drop(out)


class FFN(nn.Module):
    """Two-layer MLP with ReLU, dropout and a residual (mmcv's ``FFN`` with ``num_fcs=2``)."""

    def __init__(self, embed_dims: int, feedforward_channels: int, ffn_drop: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(
                nn.Linear(embed_dims, feedforward_channels),
                nn.ReLU(inplace=True),
                nn.Dropout(ffn_drop),
            ),
            nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(ffn_drop),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(..., C)`` -> ``(..., C)``."""
        return x + self.layers(x)


class DetrDecoderLayer(nn.Module):
    """DETR decoder layer (post-norm): self-attention, cross-attention to the image, FFN.

    Args:
        embed_dims: width; num_heads: heads; feedforward_channels: FFN width;
        dropout: attention-weight, projection and FFN dropout (MaskFormer: 0.1).
    """

    def __init__(
        self,
        embed_dims: int = 256,
        num_heads: int = 8,
        feedforward_channels: int = 2048,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dims, num_heads, dropout, dropout)
        self.cross_attn = MultiheadAttention(embed_dims, num_heads, dropout, dropout)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        query_pos: Tensor,
        memory_pos: Tensor,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """``query (N, Q, C)``, ``memory (N, HW, C)`` -> ``(N, Q, C)``."""
        query = self.norms[0](self.self_attn(query, query, query, query_pos, query_pos))
        query = self.cross_attn(
            query, memory, memory, query_pos, memory_pos, key_padding_mask=memory_padding_mask
        )
        query = self.norms[1](query)
        return self.norms[2](self.ffn(query))


class Mask2FormerDecoderLayer(DetrDecoderLayer):
    """Mask2Former decoder layer (post-norm): masked cross-attention first, then
    self-attention, then FFN."""

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        memory: Tensor,
        query_pos: Tensor,
        memory_pos: Tensor,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """``query (N, Q, C)``, ``memory (N, HW, C)``, ``attn_mask (N * heads, Q, HW)`` bool
        (True: masked out) -> ``(N, Q, C)``."""
        query = self.cross_attn(query, memory, memory, query_pos, memory_pos, attn_mask=attn_mask)
        query = self.norms[0](query)
        query = self.norms[1](self.self_attn(query, query, query, query_pos, query_pos))
        return self.norms[2](self.ffn(query))
