"""DANet (Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.decoders.context_blocks import SelfAttentionBlock
from segkit.models.layers import ConvBNReLU


class PAM(SelfAttentionBlock):
    """Position attention module: self-attention over positions (biased 1x1 projections, no
    scaling), added to the input with a learnt scale ``gamma`` initialised to 0.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(
            in_channels,
            in_channels,
            channels,
            in_channels,
            key_query_norm=False,
            value_out_norm=False,
            matmul_norm=False,
            with_out=False,
        )
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.gamma * super().forward(x, x) + x


class CAM(nn.Module):
    """Channel attention module: channels attend to channels (softmax of
    ``max(energy) - energy`` over the Gram matrix), added to the input with a learnt scale
    ``gamma`` initialised to 0.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)  # (N, C, HW)
        energy = torch.bmm(flat, flat.transpose(1, 2))  # (N, C, C)
        energy = energy.amax(dim=-1, keepdim=True) - energy
        out = torch.bmm(F.softmax(energy, dim=-1), flat).view_as(x)
        return self.gamma * out + x


class DADecoder(nn.Module):
    """Position (PAM) and channel (CAM) attention branches on ``features[in_index]``, each
    between two 3x3 ConvBNReLU; their sum is decoded (MMSegmentation's ``DAHead``).

    In training each branch also gets its own classifier (dropout + 1x1 conv, like the main
    head) and the logits are returned as ``DecoderOutput.aux["pam"]`` / ``["cam"]``, to be
    supervised like the main output (MMSegmentation: loss weight 1.0 each).

    Args:
        channels: width of both branches and of the output.
        pam_channels: width of PAM's query/key projections.
        num_classes: classes of the branch classifiers.
        dropout: dropout before the branch classifiers.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        num_classes: int,
        channels: int = 512,
        in_index: int = -1,
        pam_channels: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.pam_in_conv = ConvBNReLU(c_in, channels, 3)
        self.pam = PAM(channels, pam_channels)
        self.pam_out_conv = ConvBNReLU(channels, channels, 3)
        self.pam_conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.cam_in_conv = ConvBNReLU(c_in, channels, 3)
        self.cam = CAM()
        self.cam_out_conv = ConvBNReLU(channels, channels, 3)
        self.cam_conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        for conv in (self.pam_conv_seg, self.cam_conv_seg):
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor | DecoderOutput:
        x = features[self.in_index]
        pam = self.pam_out_conv(self.pam(self.pam_in_conv(x)))
        cam = self.cam_out_conv(self.cam(self.cam_in_conv(x)))
        out = pam + cam
        if not self.training:
            return out
        aux = {
            "pam": self.pam_conv_seg(self.dropout(pam)),
            "cam": self.cam_conv_seg(self.dropout(cam)),
        }
        return DecoderOutput(out, aux)
