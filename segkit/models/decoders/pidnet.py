"""PIDNet's decode-head bodies for its three branches."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.realtime_layers import NormActConv


class PIDBranchHead(nn.Module):
    """BN -> ReLU -> 3x3 conv -> BN -> ReLU (MMSegmentation's ``BasePIDHead`` without its
    classifier): ``(N, C_in, h, w)`` -> ``(N, channels, h, w)``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = NormActConv(in_channels, channels, 3)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class PIDDecoder(nn.Module):
    """The feature part of MMSegmentation's ``PIDHead`` on PIDNet's ``[P, D, output]`` maps.

    Eval: the I head on the output map, ``(N, channels, H/8, W/8)``. Training: a
    :class:`DecoderOutput` whose ``out`` is ``(p, i, d)`` features (``channels``, ``channels``
    and ``in_channels[-1] // 4`` wide) for :class:`~segkit.models.heads.pidnet.PIDHead`.

    Args:
        in_channels, in_strides: of the encoder levels (P ``2c``, D ``2c``, output ``4c``).
        channels: width of the P and I heads (MMSeg's ``channels``).
    """

    def __init__(
        self, in_channels: Sequence[int], in_strides: Sequence[int], channels: int = 128
    ) -> None:
        super().__init__()
        c_out = in_channels[-1]
        self.channels = channels
        self.boundary_channels = c_out // 4
        self.output_stride = in_strides[-1]
        self.i_head = PIDBranchHead(c_out, channels)
        self.p_head = PIDBranchHead(in_channels[0], channels)
        self.d_head = PIDBranchHead(in_channels[1], self.boundary_channels)

    def forward(self, features: Sequence[Tensor]) -> Tensor | DecoderOutput:
        x_p, x_d, x_i = features
        if not self.training:
            return self.i_head(x_i)
        return DecoderOutput((self.p_head(x_p), self.i_head(x_i), self.d_head(x_d)), {})
