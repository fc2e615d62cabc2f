"""MMSegmentation's ``MultiLevelNeck``: same-stride ViT block outputs -> a feature pyramid."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class MultiLevelNeck(nn.Module):
    """A 1x1 lateral conv per input, bilinear rescaling by ``scales[i]``, then a 3x3 conv per
    output (convolutions with bias, no norm or activation, as MMSegmentation's defaults).

    Args:
        in_channels, in_strides: of every encoder output (one input may feed every output).
        out_channels: width of every output.
        scales: resize factor of output ``i`` (e.g. ``[4, 2, 1, 0.5]`` turns four stride-16 maps
            into strides 4, 8, 16, 32).

    Inputs: ``(N, in_channels[i], h, w)``. Outputs: ``len(scales)`` maps
    ``(N, out_channels, floor(h * scales[i]), floor(w * scales[i]))``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_channels: int = 768,
        scales: Sequence[float] = (0.5, 1, 2, 4),
    ) -> None:
        super().__init__()
        if len(in_channels) not in (1, len(scales)):
            raise ValueError(f"{len(in_channels)} inputs for {len(scales)} scales")
        self.scales = [float(s) for s in scales]
        self.channels = [out_channels] * len(scales)
        stride = in_strides[0] if len(in_strides) == 1 else None
        self.strides = [round((stride or in_strides[i]) / s) for i, s in enumerate(self.scales)]
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in self.scales
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, features, strict=True)]
        if len(laterals) == 1:
            laterals = laterals * len(self.scales)
        return [
            conv(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
            for conv, x, s in zip(self.convs, laterals, self.scales, strict=True)
        ]
