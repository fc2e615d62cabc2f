"""EncNet: context encoding (a learned residual codebook) gating the channels of the deepest map,
with an image-level class-presence branch trained by the semantic encoding loss (SE loss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.layers import ConvBNReLU


class Encoding(nn.Module):
    """Residual encoding layer: soft-assign each position to ``num_codes`` learned codewords and
    aggregate the residuals, ``e_k = sum_i a_ik (x_i - c_k)`` with
    ``a_ik = softmax_k(s_k * ||x_i - c_k||^2)``.

    ``(N, channels, H, W)`` -> ``(N, num_codes, channels)``. Computed through matrix products,
    never materialising the ``(N, HW, num_codes, channels)`` residual tensor.
    """

    def __init__(self, channels: int, num_codes: int) -> None:
        super().__init__()
        self.channels, self.num_codes = channels, num_codes
        std = 1.0 / (num_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(num_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(num_codes).uniform_(-1, 0))

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        c = self.codewords
        dist = (x * x).sum(-1, keepdim=True) - 2 * x @ c.t() + (c * c).sum(-1)  # (N, HW, K)
        assign = F.softmax(self.scale * dist.clamp(min=0), dim=2)
        return assign.transpose(1, 2) @ x - assign.sum(1).unsqueeze(-1) * c  # (N, K, C)


class EncModule(nn.Module):
    """1x1 projection, :class:`Encoding` + BatchNorm1d + ReLU, mean over the codes, and a
    sigmoid-gated FC that rescales the input channels: ``out = relu(x + x * gamma)``.

    ``(N, C, H, W)`` -> (encoded ``(N, C)``, gated map ``(N, C, H, W)``). Names as MMSegmentation.
    """

    def __init__(self, channels: int, num_codes: int = 32) -> None:
        super().__init__()
        self.encoding_project = ConvBNReLU(channels, channels, 1)
        self.encoding = nn.Sequential(
            Encoding(channels, num_codes), nn.BatchNorm1d(num_codes), nn.ReLU(inplace=True)
        )
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        encoded = self.encoding(self.encoding_project(x)).mean(dim=1)
        gamma = self.fc(encoded)[:, :, None, None]
        return encoded, F.relu(x + x * gamma)


class EncNetDecoder(nn.Module):
    """MMSegmentation's ``EncHead``: a 3x3 ``bottleneck`` on ``features[in_index[-1]]`` (with
    ``add_lateral``, fused with 1x1 projections of the other selected maps), then
    :class:`EncModule`.

    With ``use_se_loss``, in training it returns a
    :class:`~segkit.models.decoders.base.DecoderOutput` whose ``aux["se"]`` holds image-level class
    logits ``(N, num_classes)`` from ``se_layer`` (supervised by
    :class:`~segkit.models.losses.se_loss.SEAuxiliaryLoss`); in eval it returns the map only.

    Args:
        num_classes: size of the SE branch (needed only with ``use_se_loss``).

    Output: ``(N, channels, H / in_strides[in_index[-1]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: Sequence[int] = (1, 2, 3),
        num_codes: int = 32,
        use_se_loss: bool = True,
        num_classes: int | None = None,
        add_lateral: bool = False,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.in_index = list(in_index)
        widths = [in_channels[i] for i in self.in_index]
        self.channels = channels
        self.output_stride = in_strides[self.in_index[-1]]
        self.align_corners = align_corners
        self.bottleneck = ConvBNReLU(widths[-1], channels, 3)
        self.add_lateral = add_lateral
        if add_lateral:
            self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in widths[:-1])
            self.fusion = ConvBNReLU(len(widths) * channels, channels, 3)
        self.enc_module = EncModule(channels, num_codes)
        self.se_layer = None
        if use_se_loss:
            if num_classes is None:
                raise ValueError("use_se_loss needs num_classes")
            self.se_layer = nn.Linear(channels, num_classes)

    def forward(self, features: Sequence[Tensor]) -> Tensor | DecoderOutput:
        inputs = [features[i] for i in self.in_index]
        feat = self.bottleneck(inputs[-1])
        if self.add_lateral:
            laterals = [
                F.interpolate(
                    conv(x), size=feat.shape[2:], mode="bilinear", align_corners=self.align_corners
                )
                for conv, x in zip(self.lateral_convs, inputs, strict=False)
            ]
            feat = self.fusion(torch.cat([feat, *laterals], dim=1))
        encoded, out = self.enc_module(feat)
        if self.se_layer is not None and self.training:
            return DecoderOutput(out, {"se": self.se_layer(encoded)})
        return out
