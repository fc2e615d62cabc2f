"""PointRend's coarse stage (Kirillov et al., "PointRend: Image Segmentation as Rendering",
CVPR 2020): a Semantic FPN prediction and the fine-grained features the point head samples."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.decoders.sem_fpn import SemanticFPNDecoder

__all__ = ["PointRendDecoder"]


class PointRendDecoder(nn.Module):
    """MMSegmentation's first cascade stage of PointRend (``FPNHead`` without dropout): a
    :class:`~segkit.models.decoders.sem_fpn.SemanticFPNDecoder` and a 1x1 classifier give the
    coarse logits; the pyramid levels in ``fine_index`` are passed on for point features.

    Args:
        in_channels, in_strides: the neck's levels (given by the segmentor).
        num_classes: classes of the coarse prediction.
        channels: width of the FPN decoder (MMSeg: 128).
        in_index: the levels the FPN decoder sums.
        fine_index: the levels the point head samples (MMSeg: the stride-4 level).
        aux_name: the name under which the coarse logits are returned for their loss.

    Output: :class:`DecoderOutput` ``((coarse (N, K, H/4, W/4), [fine (N, C_i, h_i, w_i)]),
    {aux_name: coarse})``. ``channels`` is the summed width of the fine levels (the point head's
    feature input), ``output_stride`` the coarse logits' stride.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        num_classes: int,
        channels: int = 128,
        in_index: Sequence[int] = (0, 1, 2, 3),
        fine_index: Sequence[int] = (0,),
        aux_name: str = "coarse",
    ) -> None:
        super().__init__()
        self.fpn = SemanticFPNDecoder(in_channels, in_strides, channels, in_index)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)
        self.fine_index = list(fine_index)
        self.channels = sum(in_channels[i] for i in self.fine_index)
        self.output_stride = self.fpn.output_stride
        self.aux_name = aux_name

    def forward(self, features: Sequence[Tensor]) -> DecoderOutput:
        coarse = self.conv_seg(self.fpn(features))
        fine = [features[i] for i in self.fine_index]
        return DecoderOutput((coarse, fine), {self.aux_name: coarse})
