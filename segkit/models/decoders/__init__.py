"""Decoders map a list of encoder features to one feature map; they know nothing of classes.

Contract: ``Decoder(in_channels, in_strides, channels, ...)`` with ``forward(features) -> Tensor``
and attributes ``channels`` and ``output_stride``. ``in_channels``/``in_strides`` come from the
encoder's ``feature_info`` when the :class:`~segkit.models.Segmentor` builds the decoder.
"""

from segkit.models.decoders.deeplabv3plus import ASPP, DeepLabV3PlusDecoder
from segkit.models.decoders.fcn import FCNDecoder
from segkit.models.decoders.segformer import SegFormerDecoder

__all__ = ["ASPP", "DeepLabV3PlusDecoder", "FCNDecoder", "SegFormerDecoder"]
