"""GCNet (Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond,
ICCVW 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import ContextFCNDecoder


def _transform(channels: int, planes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, planes, 1),
        nn.LayerNorm([planes, 1, 1]),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, channels, 1),
    )


class ContextBlock(nn.Module):
    """Global context block: one context vector per image (attention pooling by a 1x1 conv +
    softmax over positions, or average pooling), passed through a bottleneck
    (conv-LayerNorm-ReLU-conv, ``int(channels * ratio)`` wide) and added to (``channel_add``)
    and/or multiplied into (``channel_mul``, sigmoid) every position. MMCV's ``ContextBlock``.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        ratio: float = 0.25,
        pooling_type: str = "att",
        fusion_types: Sequence[str] = ("channel_add",),
    ) -> None:
        super().__init__()
        if pooling_type not in ("att", "avg"):
            raise ValueError(f"pooling_type must be 'att' or 'avg', got {pooling_type!r}")
        if not fusion_types or set(fusion_types) - {"channel_add", "channel_mul"}:
            raise ValueError(
                f"fusion_types: 'channel_add' and/or 'channel_mul', got {fusion_types}"
            )
        planes = int(in_channels * ratio)
        self.conv_mask = nn.Conv2d(in_channels, 1, 1) if pooling_type == "att" else None
        self.channel_add_conv = (
            _transform(in_channels, planes) if "channel_add" in fusion_types else None
        )
        self.channel_mul_conv = (
            _transform(in_channels, planes) if "channel_mul" in fusion_types else None
        )
        for branch in (self.channel_add_conv, self.channel_mul_conv):
            if branch is not None:  # start as the identity
                nn.init.zeros_(branch[-1].weight)
                nn.init.zeros_(branch[-1].bias)

    def spatial_pool(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> context ``(N, C, 1, 1)``."""
        if self.conv_mask is None:
            return x.mean(dim=(2, 3), keepdim=True)
        n, c = x.shape[:2]
        weights = self.conv_mask(x).view(n, 1, -1).softmax(dim=-1)  # (N, 1, HW)
        return torch.matmul(x.view(n, c, -1), weights.transpose(1, 2)).view(n, c, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        context = self.spatial_pool(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out


class GCDecoder(ContextFCNDecoder):
    """FCN head with a global context block between its two 3x3 convs (MMSegmentation's
    ``GCHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        ratio: float = 0.25,
        pooling_type: str = "att",
        fusion_types: Sequence[str] = ("channel_add",),
        concat_input: bool = True,
    ) -> None:
        super().__init__(in_channels, in_strides, channels, in_index, concat_input=concat_input)
        self.context = ContextBlock(channels, ratio, pooling_type, tuple(fusion_types))
