"""SETR's multi-level feature aggregation neck (MMSegmentation's ``MLANeck``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class MLANeck(nn.Module):
    """LayerNorm per input, 1x1 ConvBNReLU projections to ``out_channels``, a top-down running
    sum (deepest input first) and a 3x3 ConvBNReLU on each partial sum.

    Inputs: same-stride maps ``(N, in_channels[i], h, w)``. Outputs: ``len(in_channels)`` maps
    ``(N, out_channels, h, w)``, ordered deepest-first sum (as MMSegmentation).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_channels: int = 256,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.channels = [out_channels] * len(in_channels)
        self.strides = list(in_strides)
        self.norm = nn.ModuleList(nn.LayerNorm(c, eps=norm_eps) for c in in_channels)
        self.channel_proj = nn.ModuleList(ConvBNReLU(c, out_channels, 1) for c in in_channels)
        self.feat_extract = nn.ModuleList(
            ConvBNReLU(out_channels, out_channels, 3) for _ in in_channels
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        projected = [
            proj(norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous())
            for x, norm, proj in zip(features, self.norm, self.channel_proj)
        ]
        outs, running = [], None
        for x, conv in zip(reversed(projected), self.feat_extract):
            running = x if running is None else running + x
            outs.append(conv(running))
        return outs
