"""SETR's decoders: naive / progressive upsampling (``SETRUPDecoder``) and multi-level
feature aggregation (``SETRMLADecoder``, after :class:`~segkit.models.necks.mla.MLANeck`).

Zheng et al., "Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with
Transformers", CVPR 2021. Layouts follow MMSegmentation's ``SETRUPHead`` / ``SETRMLAHead``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class Upsample(nn.Module):
    """Bilinear upsampling by an integer factor (``align_corners=False``)."""

    def __init__(self, scale_factor: int) -> None:
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: Tensor) -> Tensor:
        size = (x.shape[2] * self.scale_factor, x.shape[3] * self.scale_factor)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SETRUPDecoder(nn.Module):
    """LayerNorm over the channels of ``features[in_index]``, then ``num_convs`` times
    (ConvBNReLU ``kernel_size`` -> bilinear x``up_scale``).

    SETR-Naive: one 1x1 conv and x4; SETR-PUP: four 3x3 convs, x2 each.
    Output: ``(N, channels, H / s * up_scale**num_convs, ...)`` for input stride ``s``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        in_index: int = -1,
        num_convs: int = 1,
        up_scale: int = 4,
        kernel_size: int = 3,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        c_in = in_channels[in_index]
        self.channels = channels
        stride = in_strides[in_index] / up_scale**num_convs
        self.output_stride = int(stride) if stride.is_integer() else stride
        self.norm = nn.LayerNorm(c_in, eps=norm_eps)
        self.up_convs = nn.ModuleList(
            nn.Sequential(
                ConvBNReLU(c_in if i == 0 else channels, channels, kernel_size), Upsample(up_scale)
            )
            for i in range(num_convs)
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = self.norm(features[self.in_index].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        for up_conv in self.up_convs:
            x = up_conv(x.contiguous())
        return x


class SETRMLADecoder(nn.Module):
    """Per input: two 3x3 ConvBNReLU to ``mla_channels`` and bilinear x``up_scale``; the
    results are concatenated.

    Output: ``(N, mla_channels * len(in_index), H / s * up_scale, ...)``; ``channels`` must be
    ``mla_channels * len(in_index)`` (MMSegmentation's check).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        mla_channels: int = 128,
        in_index: Sequence[int] = (0, 1, 2, 3),
        up_scale: int = 4,
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        if channels != mla_channels * len(self.in_index):
            raise ValueError(f"channels ({channels}) must be mla_channels x number of inputs")
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]] // up_scale
        self.up_convs = nn.ModuleList(
            nn.Sequential(
                ConvBNReLU(in_channels[i], mla_channels, 3),
                ConvBNReLU(mla_channels, mla_channels, 3),
                Upsample(up_scale),
            )
            for i in self.in_index
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return torch.cat([up(features[i]) for i, up in zip(self.in_index, self.up_convs)], dim=1)
