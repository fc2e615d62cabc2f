"""EMANet (Li et al., Expectation-Maximization Attention Networks for Semantic Segmentation,
ICCV 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import ConvBN
from segkit.models.layers import ConvBNReLU


class EMAModule(nn.Module):
    """Expectation-maximisation attention: ``num_stages`` EM iterations (without gradient)
    fit ``num_bases`` L2-normalised bases to the positions, which are then reconstructed from
    them. In training the bases are averaged over the batch (and over processes when
    ``torch.distributed`` is initialised) into the running ``bases`` buffer with ``momentum``.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    bases: Tensor

    def __init__(self, channels: int, num_bases: int, num_stages: int, momentum: float) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError("num_stages must be at least 1")
        self.num_stages = num_stages
        self.momentum = momentum
        bases = torch.randn(1, channels, num_bases) * math.sqrt(2.0 / num_bases)
        self.register_buffer("bases", F.normalize(bases, dim=1))

    def forward(self, feats: Tensor) -> Tensor:
        n, c, h, w = feats.shape
        feats = feats.view(n, c, h * w)
        bases = self.bases.expand(n, -1, -1)
        with torch.no_grad():
            for _ in range(self.num_stages):
                attention = F.softmax(torch.einsum("bcn,bck->bnk", feats, bases), dim=2)
                normed = F.normalize(attention, dim=1, p=1)  # responsibilities per basis
                bases = F.normalize(torch.einsum("bcn,bnk->bck", feats, normed), dim=1)
        recon = torch.einsum("bck,bnk->bcn", bases, attention).view(n, c, h, w)
        if self.training:
            mean = bases.mean(dim=0, keepdim=True)
            if dist.is_available() and dist.is_initialized():
                mean = mean / dist.get_world_size()
                dist.all_reduce(mean)
            mean = F.normalize(mean, dim=1)
            self.bases.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
        return recon


class EMADecoder(nn.Module):
    """EMA unit on ``features[in_index]`` (3x3 ConvBNReLU in, a frozen 1x1 conv, EM attention,
    ReLU, 1x1 conv + BN, residual ReLU), a 3x3 ConvBNReLU to ``channels`` and, with
    ``concat_input``, a 3x3 fusion with the input (MMSegmentation's ``EMAHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 256,
        in_index: int = -1,
        ema_channels: int = 512,
        num_bases: int = 64,
        num_stages: int = 3,
        momentum: float = 0.1,
        concat_input: bool = True,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        c_in = in_channels[in_index]
        self.ema_module = EMAModule(ema_channels, num_bases, num_stages, momentum)
        self.ema_in_conv = ConvBNReLU(c_in, ema_channels, 3)
        # frozen, as in the paper's code: the EM bases live in this projection's space
        self.ema_mid_conv = nn.Conv2d(ema_channels, ema_channels, 1)
        self.ema_mid_conv.requires_grad_(False)
        self.ema_out_conv = ConvBN(ema_channels, ema_channels)
        self.bottleneck = ConvBNReLU(ema_channels, channels, 3)
        self.conv_cat = ConvBNReLU(c_in + channels, channels, 3) if concat_input else None

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[self.in_index]
        identity = self.ema_in_conv(x)
        recon = F.relu(self.ema_module(self.ema_mid_conv(identity)))
        out = self.bottleneck(F.relu(identity + self.ema_out_conv(recon)))
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out
