"""OCRNet: object-contextual representations on a soft-region cascade (Yuan et al., ECCV 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.decoders.context_blocks import SelfAttentionBlock
from segkit.models.layers import ConvBNReLU

__all__ = ["OCRDecoder", "ObjectAttentionBlock", "SoftRegionHead", "spatial_gather"]


def _resize_concat(features: Sequence[Tensor]) -> Tensor:
    """Upsample every map to the first one's size (bilinear) and concatenate the channels."""
    size = features[0].shape[2:]
    return torch.cat(
        [
            f
            if f.shape[2:] == size
            else F.interpolate(f, size, mode="bilinear", align_corners=False)
            for f in features
        ],
        dim=1,
    )


def spatial_gather(feats: Tensor, logits: Tensor) -> Tensor:
    """Object region representations: each class's feature average, weighted by the softmax of
    its logits over all positions.

    ``feats (N, C, H, W)``, ``logits (N, K, H, W)`` -> ``(N, C, K, 1)``.
    """
    weights = F.softmax(logits.flatten(2), dim=2)  # (N, K, HW)
    context = torch.matmul(weights, feats.flatten(2).transpose(1, 2))  # (N, K, C)
    return context.transpose(1, 2).unsqueeze(3)


class SoftRegionHead(nn.Module):
    """The cascade's first stage (MMSegmentation's ``FCNHead`` without dropout): ``num_convs``
    ConvBNReLU layers and a 1x1 classifier, giving the soft object regions.

    ``(N, in_channels, h, w)`` -> logits ``(N, num_classes, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_classes: int,
        num_convs: int = 1,
        kernel_size: int = 1,
    ) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(
                ConvBNReLU(in_channels if i == 0 else channels, channels, kernel_size)
                for i in range(num_convs)
            )
        )
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_seg(self.convs(x))


class ObjectAttentionBlock(SelfAttentionBlock):
    """Pixel-region relation: every pixel attends over the object region representations
    (queries and keys through two 1x1 ConvBNReLU, values and output through one), and the
    result is fused with the pixel features by a 1x1 ConvBNReLU.

    ``pixels (N, C, H, W)``, ``regions (N, C, K, 1)`` -> ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__(
            key_in_channels=channels,
            query_in_channels=channels,
            channels=key_channels,
            out_channels=channels,
            share_key_query=False,
            key_query_num_convs=2,
            value_out_num_convs=1,
            key_query_norm=True,
            value_out_norm=True,
            matmul_norm=True,
            with_out=True,
        )
        self.bottleneck = ConvBNReLU(channels * 2, channels, 1)

    def forward(self, pixels: Tensor, regions: Tensor) -> Tensor:
        context = super().forward(pixels, regions)
        return self.bottleneck(torch.cat([context, pixels], dim=1))


class OCRDecoder(nn.Module):
    """OCRNet's cascade: the stages in ``in_index`` are upsampled to the first one's stride and
    concatenated (HRNetV2's representation); a :class:`SoftRegionHead` predicts soft object
    regions, which weight a 3x3 ConvBNReLU projection of the same map into one representation per
    class (:func:`spatial_gather`); each pixel then attends over these (:class:`ObjectAttentionBlock`).

    Args:
        in_channels, in_strides: the encoder's stages (given by the segmentor).
        num_classes: classes of the soft regions (the dataset's).
        channels: width of the pixel representation and of the output (MMSeg: 512).
        ocr_channels: width of the attention's queries and keys (MMSeg: 256).
        in_index: the stages used (all four for HRNet).
        soft_region_channels: width of the soft-region convs (default: the concatenated width,
            as MMSegmentation's HRNet configs); ``soft_region_kernel_size``/``_num_convs``: its
            convs.
        aux_name: the name under which the soft-region logits are returned for their loss.

    Output: :class:`DecoderOutput` ``(out (N, channels, H/s, W/s), {aux_name: (N, K, H/s, W/s)})``
    with ``s = in_strides[in_index[0]]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        num_classes: int,
        channels: int = 512,
        ocr_channels: int = 256,
        in_index: Sequence[int] = (0, 1, 2, 3),
        soft_region_channels: int | None = None,
        soft_region_kernel_size: int = 1,
        soft_region_num_convs: int = 1,
        aux_name: str = "soft_region",
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]]
        self.aux_name = aux_name
        c_in = sum(in_channels[i] for i in self.in_index)
        self.soft_region = SoftRegionHead(
            c_in,
            soft_region_channels or c_in,
            num_classes,
            soft_region_num_convs,
            soft_region_kernel_size,
        )
        self.bottleneck = ConvBNReLU(c_in, channels, 3)
        self.object_context_block = ObjectAttentionBlock(channels, ocr_channels)

    def forward(self, features: Sequence[Tensor]) -> DecoderOutput:
        x = _resize_concat([features[i] for i in self.in_index])
        regions_logits = self.soft_region(x)
        feats = self.bottleneck(x)
        regions = spatial_gather(feats, regions_logits)
        out = self.object_context_block(feats, regions)
        return DecoderOutput(out, {self.aux_name: regions_logits})
