"""DDRNet's (and PIDNet's) segmentation head body: BN -> ReLU -> 3x3 conv -> BN -> ReLU."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from segkit.models.realtime_layers import NormActConv


class DDRDecoder(nn.Module):
    """MMSegmentation's ``DDRHead`` body (``_make_base_head``) on ``features[in_index]``:
    ``(N, C_in, h, w)`` -> ``(N, channels, h, w)``. DDRNet uses one on the final map (the
    decode head) and one on the 1/8 spatial-branch map (the auxiliary head, loss weight 0.4).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 128,
        in_index: int = -1,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        self.head = nn.Sequential(
            NormActConv(in_channels[in_index], channels, 3),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.head(features[self.in_index])
