"""MMSegmentation's ``Feature2Pyramid`` (BEiT, MAE): stride-16 ViT maps -> strides 4 to 32."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class Feature2Pyramid(nn.Module):
    """Rescale same-stride maps by ``rescales``: 4 = two 2x2 transposed convs with BN + GELU
    between, 2 = one 2x2 transposed conv, 1 = identity, 0.5 / 0.25 = 2x2 / 4x4 max pooling.

    Args:
        in_channels, in_strides: of every encoder output (all equal: one ViT width and stride).
        rescales: ``[4, 2, 1, 0.5]`` or ``[2, 1, 0.5, 0.25]``, one per input, in that order.

    Inputs: ``(N, C, h, w)`` each. Outputs: ``(N, C, h * r, w * r)`` for each ``r`` in
    ``rescales`` (pooling floors). Submodule names are MMSegmentation's (``upsample_4x`` ...).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        rescales: Sequence[float] = (4, 2, 1, 0.5),
    ) -> None:
        super().__init__()
        rescales = [float(r) for r in rescales]
        if rescales not in ([4, 2, 1, 0.5], [2, 1, 0.5, 0.25]):
            raise ValueError(
                f"rescales must be [4, 2, 1, 0.5] or [2, 1, 0.5, 0.25], got {rescales}"
            )
        if len(in_channels) != len(rescales) or len(set(in_channels)) != 1:
            raise ValueError(f"expected {len(rescales)} inputs of one width, got {in_channels}")
        dim = in_channels[0]
        self.channels = [dim] * len(rescales)
        self.strides = [round(s / r) for s, r in zip(in_strides, rescales, strict=True)]
        ops: list[nn.Module] = []
        if rescales[0] == 4:
            self.upsample_4x = nn.Sequential(
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
                nn.BatchNorm2d(dim),
                nn.GELU(),
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            )
            ops.append(self.upsample_4x)
        self.upsample_2x = nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        self.identity = nn.Identity()
        self.downsample_2x = nn.MaxPool2d(kernel_size=2, stride=2)
        ops += [self.upsample_2x, self.identity, self.downsample_2x]
        if rescales[-1] == 0.25:
            self.downsample_4x = nn.MaxPool2d(kernel_size=4, stride=4)
            ops.append(self.downsample_4x)
        self._ops = ops

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [op(x) for op, x in zip(self._ops, features, strict=True)]
