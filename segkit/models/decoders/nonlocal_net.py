"""Non-local network (Wang et al., Non-local Neural Networks, CVPR 2018) as a segmentation head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import ContextFCNDecoder, ConvBN


class NonLocal2d(nn.Module):
    """Non-local block: ``x + W_z(softmax(theta(x) phi(x)^T) g(x))`` over all positions
    (MMCV's ``NonLocal2d``, the same parameters; ``conv_out`` is conv + BN).

    Args:
        in_channels: input/output width.
        reduction: ``theta``/``phi``/``g`` project to ``in_channels // reduction``.
        use_scale: divide the ``embedded_gaussian`` similarities by ``sqrt(inter_channels)``.
        mode: ``"embedded_gaussian"`` (softmax) or ``"dot_product"`` (divide by the number of
            positions).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        reduction: int = 2,
        use_scale: bool = True,
        mode: str = "embedded_gaussian",
    ) -> None:
        super().__init__()
        if mode not in ("embedded_gaussian", "dot_product"):
            raise ValueError(f"mode must be 'embedded_gaussian' or 'dot_product', got {mode!r}")
        self.mode = mode
        self.use_scale = use_scale
        self.inter_channels = max(in_channels // reduction, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.conv_out = ConvBN(self.inter_channels, in_channels)
        for conv in (self.g, self.theta, self.phi):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv_out.bn.weight)  # the block starts as the identity

    def pairwise(self, theta: Tensor, phi: Tensor) -> Tensor:
        """``theta (N, HW, C')``, ``phi (N, C', HW)`` -> weights ``(N, HW, HW)``."""
        weight = torch.matmul(theta, phi)
        if self.mode == "dot_product":
            return weight / weight.shape[-1]
        if self.use_scale:
            weight = weight / theta.shape[-1] ** 0.5
        return weight.softmax(dim=-1)

    def aggregate(self, x: Tensor) -> Tensor:
        """The attended values ``(N, C', H, W)`` (before ``conv_out``)."""
        n, _, h, w = x.shape
        g = self.g(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        theta = self.theta(x).flatten(2).transpose(1, 2)
        phi = self.phi(x).flatten(2)
        y = torch.matmul(self.pairwise(theta, phi), g)
        return y.transpose(1, 2).reshape(n, self.inter_channels, h, w)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_out(self.aggregate(x))


class NLDecoder(ContextFCNDecoder):
    """FCN head with a non-local block between its two 3x3 convs (MMSegmentation's ``NLHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        reduction: int = 2,
        use_scale: bool = True,
        mode: str = "embedded_gaussian",
        concat_input: bool = True,
    ) -> None:
        super().__init__(in_channels, in_strides, channels, in_index, concat_input=concat_input)
        self.context = NonLocal2d(channels, reduction, use_scale, mode)
