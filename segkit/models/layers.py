"""Building blocks shared by decoders, with MMSegmentation's ``ConvModule`` layout."""

from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU, "same" padding for any dilation.

    The same parameters as MMSegmentation's ``ConvModule`` with BN and ReLU (names ``conv``,
    ``bn``), which keeps checkpoint conversion a renaming.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)


class SeparableConvBNReLU(nn.Sequential):
    """Depth-wise ConvBNReLU followed by a point-wise ConvBNReLU (as MMSegmentation's
    ``DepthwiseSeparableConvModule``: norm and activation after both convolutions)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(
            in_channels, in_channels, kernel_size, dilation=dilation, groups=in_channels
        )
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1)
