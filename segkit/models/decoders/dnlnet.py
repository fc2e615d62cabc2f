"""DNLNet (Yin et al., Disentangled Non-Local Neural Networks, ECCV 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import ContextFCNDecoder
from segkit.models.decoders.nonlocal_net import NonLocal2d


class DisentangledNonLocal2d(NonLocal2d):
    """Non-local block split into a whitened pairwise term (query and key centred over the
    positions, similarities sharpened by ``1 / temperature``) and a unary term (one softmax
    attention map over the positions from ``conv_mask``, shared by all queries).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        reduction: int = 2,
        use_scale: bool = True,
        mode: str = "embedded_gaussian",
        temperature: float = 0.05,
    ) -> None:
        super().__init__(in_channels, reduction, use_scale, mode)
        self.temperature = temperature
        self.conv_mask = nn.Conv2d(in_channels, 1, 1)

    def pairwise(self, theta: Tensor, phi: Tensor) -> Tensor:
        theta = theta - theta.mean(dim=1, keepdim=True)
        phi = phi - phi.mean(dim=2, keepdim=True)
        if self.mode == "dot_product":
            return super().pairwise(theta, phi)
        weight = torch.matmul(theta, phi)
        if self.use_scale:
            weight = weight / theta.shape[-1] ** 0.5
        return (weight / self.temperature).softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = self.g(x).flatten(2)  # (N, C', HW)
        unary = self.conv_mask(x).view(n, 1, -1).softmax(dim=-1)  # (N, 1, HW)
        unary = torch.matmul(unary, g.transpose(1, 2)).view(n, self.inter_channels, 1, 1)
        return x + self.conv_out(self.aggregate(x) + unary)


class DNLDecoder(ContextFCNDecoder):
    """FCN head with a disentangled non-local block between its two 3x3 convs
    (MMSegmentation's ``DNLHead``).

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
        temperature: float = 0.05,
        concat_input: bool = True,
    ) -> None:
        super().__init__(in_channels, in_strides, channels, in_index, concat_input=concat_input)
        self.context = DisentangledNonLocal2d(channels, reduction, use_scale, mode, temperature)
