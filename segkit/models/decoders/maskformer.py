"""MaskFormer's pixel decoder: an FPN (GroupNorm) from the coarsest encoder level down to the
finest, whose last map gives the per-pixel mask embeddings; the transformer decoder attends to
the raw coarsest encoder map (MMDetection's ``PixelDecoder``; its parameter names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.mask2former import ConvGN, MaskFeatures

__all__ = ["MaskFormerPixelDecoder"]


class MaskFormerPixelDecoder(nn.Module):
    """FPN pixel decoder (MaskFormer, Cheng et al., NeurIPS 2021).

    Args:
        in_channels, in_strides: the encoder's levels (finest first), given by the segmentor.
        channels: FPN width (256).
        mask_channels: width of the mask embeddings (256).

    ``forward(features) -> MaskFeatures`` with ``mask`` at ``in_strides[0]`` and
    ``multi_scale = [features[-1]]`` (the coarsest encoder map, ``in_channels[-1]`` wide).
    ``channels`` is the transformer memory width the head sees: ``in_channels[-1]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        mask_channels: int = 256,
    ) -> None:
        super().__init__()
        self.num_inputs = len(in_channels)
        self.output_stride = in_strides[0]
        self.channels = in_channels[-1]
        self.lateral_convs = nn.ModuleList(ConvGN(c, channels) for c in in_channels[:-1])
        self.output_convs = nn.ModuleList(
            ConvGN(channels, channels, 3, act=True) for _ in in_channels[:-1]
        )
        self.last_feat_conv = ConvGN(in_channels[-1], channels, 3, act=True)
        self.mask_feature = nn.Conv2d(channels, mask_channels, 3, padding=1)
        for conv in [m.conv for m in (*self.lateral_convs, *self.output_convs)]:
            nn.init.kaiming_uniform_(conv.weight, a=1)  # caffe2 xavier
        nn.init.kaiming_uniform_(self.mask_feature.weight, a=1)
        nn.init.zeros_(self.mask_feature.bias)

    def forward(self, features: Sequence[Tensor]) -> MaskFeatures:
        """Encoder maps (finest first) -> :class:`MaskFeatures`."""
        y = self.last_feat_conv(features[-1])
        for i in range(self.num_inputs - 2, -1, -1):
            lateral = self.lateral_convs[i](features[i])
            y = self.output_convs[i](
                lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest")
            )
        return MaskFeatures(self.mask_feature(y), [features[-1]], self.output_stride)
