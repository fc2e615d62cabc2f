"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch, built on ``grid_sample``.

The same computation as mmcv's ``MultiScaleDeformableAttention`` (and its CUDA kernel), with the
same parameter names (``sampling_offsets``, ``attention_weights``, ``value_proj``,
``output_proj``), so MMSegmentation / MMDetection checkpoints load by renaming prefixes only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MultiScaleDeformableAttention", "multi_scale_deformable_attention"]


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Bilinearly sample every level at the given points and take their weighted sum.

    Args:
        value: ``(N, S, heads, head_dim)``, the levels' maps flattened and concatenated
            (``S = sum(h * w)``).
        spatial_shapes: ``(h, w)`` of each level, in the order of ``value``.
        sampling_locations: ``(N, Q, heads, levels, points, 2)`` as ``(x, y)`` in ``[0, 1]``
            (pixel centres at ``(i + 0.5) / size``; outside points read zeros).
        attention_weights: ``(N, Q, heads, levels, points)``, normalised over levels x points.

    Returns:
        ``(N, Q, heads * head_dim)``.
    """
    n, _, heads, head_dim = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1] with align_corners=False
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        # (N, h*w, heads, d) -> (N*heads, d, h, w)
        v = values[level].flatten(2).transpose(1, 2).reshape(n * heads, head_dim, h, w)
        # (N, Q, heads, points, 2) -> (N*heads, Q, points, 2)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(
            F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # (N*heads, d, Q, levels*points) weighted by (N*heads, 1, Q, levels*points)
    weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, q, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(n, heads * head_dim, q).transpose(1, 2).contiguous()


class MultiScaleDeformableAttention(nn.Module):
    """Each query attends to ``points`` learned offsets around its reference point on every level.

    Args:
        embed_dims: query / value width.
        num_heads: attention heads.
        num_levels: feature levels of the value.
        num_points: sampling points per head and level.
        dropout: dropout on the output before the residual.

    ``forward`` adds the residual (``identity``, the query by default) like mmcv's module.
    """

    def __init__(
        self,
        embed_dims: int = 256,
        num_heads: int = 8,
        num_levels: int = 4,
        num_points: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: offsets start on rays around the reference point (one
        direction per head, distance growing with the point index), uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(
        self,
        query: Tensor,
        value: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
        query_pos: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        identity: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``query (N, Q, C)`` to ``value (N, S, C)``.

        Args:
            reference_points: ``(N, Q, levels, 2)`` normalised ``(x, y)`` per level.
            spatial_shapes: ``(h, w)`` per level; ``sum(h * w) == S``.
            query_pos: added to the query (not the value).
            key_padding_mask: ``(N, S)``, True where the value is padding (zeroed).
            identity: residual (default: the query without ``query_pos``).

        Returns:
            ``(N, Q, C)``.
        """
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        n, q, _ = query.shape
        v = self.value_proj(value)
        if key_padding_mask is not None:
            v = v.masked_fill(key_padding_mask[..., None], 0.0)
        v = v.view(n, v.shape[1], self.num_heads, -1)
        shape = (n, q, self.num_heads, self.num_levels, self.num_points)
        offsets = self.sampling_offsets(query).view(*shape, 2)
        weights = self.attention_weights(query).view(n, q, self.num_heads, -1).softmax(-1)
        # offsets are in pixels of each level: normalise by its (w, h)
        normalizer = torch.tensor(
            [[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device
        )
        locations = (
            reference_points[:, :, None, :, None, :]
            + offsets / normalizer[None, None, None, :, None]
        )
        out = multi_scale_deformable_attention(v, spatial_shapes, locations, weights.view(shape))
        return self.dropout(self.output_proj(out)) + identity
