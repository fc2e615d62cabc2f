"""PSANet (Zhao et al., PSANet: Point-wise Spatial Attention Network for Scene Parsing,
ECCV 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.layers import ConvBNReLU
from segkit.models.ops.psa_mask import psa_mask


class PSADecoder(nn.Module):
    """Point-wise spatial attention on ``features[in_index]`` (MMSegmentation's ``PSAHead``).

    Each branch reduces the map to ``channels`` (1x1), shrinks it by ``shrink_factor``
    (bilinear) and predicts, for every position, a ``mask_size`` window of attention weights
    (1x1 ConvBNReLU + 1x1 conv); :func:`~segkit.models.ops.psa_mask.psa_mask` spreads the
    windows into a position-by-position map, softmax-normalised over the attended positions
    (``psa_softmax``), which aggregates the reduced features. ``"bi-direction"`` runs a
    ``collect`` and a ``distribute`` branch and concatenates them. A 1x1 ConvBNReLU (with
    padding 1, as MMSegmentation has it) projects back to the input width, the result is
    resized to the input and fused with it by a 3x3 ConvBNReLU.

    Args:
        mask_size: attention window ``(h, w)``; ``2 * (feature size / shrink_factor) - 1``
            covers the whole map (MMSegmentation: 66 x 66 for 512 crops, 97 x 97 for 769).
        psa_type: ``"collect"``, ``"distribute"`` or ``"bi-direction"``.
        compact: predict the full ``h*w`` attention directly (``mask_size`` must equal the
            shrunk map) instead of windows; for ``collect`` it is read transposed.
        shrink_factor: downsampling of the attention branches.
        normalization_factor: the aggregated features are divided by it (None: the window
            area).
        psa_softmax: softmax over the attended positions.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        mask_size: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        psa_type: str = "bi-direction",
        compact: bool = False,
        shrink_factor: int = 2,
        normalization_factor: float | None = 1.0,
        psa_softmax: bool = True,
    ) -> None:
        super().__init__()
        if psa_type not in ("collect", "distribute", "bi-direction"):
            raise ValueError(f"unknown psa_type {psa_type!r}")
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        self.mask_size = (int(mask_size[0]), int(mask_size[1]))
        self.psa_type = psa_type
        self.compact = compact
        self.shrink_factor = shrink_factor
        area = self.mask_size[0] * self.mask_size[1]
        self.normalization_factor = float(
            area if normalization_factor is None else normalization_factor
        )
        self.psa_softmax = psa_softmax
        c_in = in_channels[in_index]
        self.reduce = ConvBNReLU(c_in, channels)
        self.attention = nn.Sequential(
            ConvBNReLU(channels, channels), nn.Conv2d(channels, area, 1, bias=False)
        )
        bidirectional = psa_type == "bi-direction"
        if bidirectional:
            self.reduce_p = ConvBNReLU(c_in, channels)
            self.attention_p = nn.Sequential(
                ConvBNReLU(channels, channels), nn.Conv2d(channels, area, 1, bias=False)
            )
        self.proj = ConvBNReLU(channels * (2 if bidirectional else 1), c_in)
        self.proj.conv.padding = (1, 1)  # MMSegmentation's: the map grows by 2, resized below
        self.bottleneck = ConvBNReLU(2 * c_in, channels, 3)

    def _shrink(self, h: int, w: int) -> tuple[int, int, bool]:
        """Shrunk size and the ``align_corners`` MMSegmentation resizes with (True only when
        both sides are indivisible by the factor)."""
        f = self.shrink_factor
        if f == 1:
            return h, w, False
        if h % f and w % f:
            return (h - 1) // f + 1, (w - 1) // f + 1, True
        return h // f, w // f, False

    def _aggregate(self, x: Tensor, attention: nn.Module, psa_type: str, transpose: bool) -> Tensor:
        """Attend over the shrunk map ``x (N, C, h, w)`` -> ``(N, C, h, w)``. ``transpose``:
        read a compact prediction as ``[source, target]``."""
        n, c, h, w = x.shape
        y = attention(x)
        if not self.compact:
            y = psa_mask(y, psa_type, self.mask_size)
        y = y.reshape(n, h * w, h * w)  # [attended position, output position]
        if self.compact and transpose:
            y = y.transpose(1, 2)
        if self.psa_softmax:
            y = F.softmax(y, dim=1)
        out = torch.bmm(x.reshape(n, c, h * w), y).view(n, c, h, w)
        return out * (1.0 / self.normalization_factor)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        h, w, align = self._shrink(*x.shape[2:])
        if self.psa_type == "bi-direction":
            # (MMSegmentation transposes the compact prediction of the distribute branch here,
            # but of a single collect branch)
            branches = [
                (self.reduce, self.attention, "collect", False),
                (self.reduce_p, self.attention_p, "distribute", True),
            ]
        else:
            branches = [(self.reduce, self.attention, self.psa_type, self.psa_type == "collect")]
        outs = []
        for reduce, attention, psa_type, transpose in branches:
            r = reduce(x)
            if self.shrink_factor != 1:
                r = F.interpolate(r, size=(h, w), mode="bilinear", align_corners=align)
            outs.append(self._aggregate(r, attention, psa_type, transpose))
        out = self.proj(torch.cat(outs, dim=1))
        out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=align)
        return self.bottleneck(torch.cat([x, out], dim=1))
