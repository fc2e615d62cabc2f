"""SegFormer's all-MLP decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU


class SegFormerDecoder(nn.Module):
    """Projects every encoder stage to ``channels`` (1x1 conv), upsamples all to the finest
    stride, concatenates and fuses them with a 1x1 ConvBNReLU.

    Args:
        in_channels, in_strides: the encoder's stages (given by the segmentor).
        channels: width of the projections and of the output.
        in_index: which stages to use.
        projection: ``"conv_bn_relu"`` (MMSegmentation's ``SegformerHead``: ConvModule with BN
            and ReLU) or ``"linear"`` (the reference code and transformers'
            ``SegformerDecodeHead``: a 1x1 conv with bias, no norm or activation).

    Output: ``(N, channels, H / in_strides[in_index[0]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        in_index: Sequence[int] = (0, 1, 2, 3),
        projection: str = "conv_bn_relu",
    ) -> None:
        super().__init__()
        if projection not in ("conv_bn_relu", "linear"):
            raise ValueError(f"projection must be 'conv_bn_relu' or 'linear', got {projection!r}")
        self.in_index = list(in_index)
        self.channels = channels
        self.output_stride = in_strides[self.in_index[0]]
        self.convs = nn.ModuleList(
            ConvBNReLU(in_channels[i], channels, 1)
            if projection == "conv_bn_relu"
            else nn.Conv2d(in_channels[i], channels, 1)
            for i in self.in_index
        )
        self.fusion_conv = ConvBNReLU(channels * len(self.in_index), channels, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        inputs = [features[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        outs = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False)
            if x.shape[2:] != size
            else conv(x)
            for conv, x in zip(self.convs, inputs)
        ]
        return self.fusion_conv(torch.cat(outs, dim=1))


def transformers_decode_head_to_segkit(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint transform (``after_rename``) for transformers' ``SegformerDecodeHead``.

    Its per-stage ``Linear`` projections (``(out, in)``) become 1x1 convs (``(out, in, 1, 1)``),
    and because it concatenates the stages deepest first, the fusion conv's input-channel
    blocks are reversed to segkit's finest-first order.
    """
    out = dict(state_dict)
    n_stages = 0
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[:2] == ["decoder", "convs"] and parts[-1] == "weight" and value.ndim == 2:
            out[key] = value[:, :, None, None]
            n_stages = max(n_stages, int(parts[2]) + 1)
    fuse = "decoder.fusion_conv.conv.weight"
    if fuse in out and n_stages:
        out[fuse] = torch.cat(out[fuse].chunk(n_stages, dim=1)[::-1], dim=1)
    return out
