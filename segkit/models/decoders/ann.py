"""ANN (Zhu et al., Asymmetric Non-local Neural Networks for Semantic Segmentation, ICCV 2019):
non-local attention whose keys and values are pyramid-pooled to a few dozen positions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.models.decoders.context_blocks import ConvBN, SelfAttentionBlock
from segkit.models.layers import ConvBNReLU
from segkit.models.ops.adaptive_pool import AdaptiveAvgPool2d


class PPMConcat(nn.ModuleList):
    """Adaptive average pools at ``pool_scales``, flattened and concatenated:
    ``(N, C, H, W) -> (N, C, sum(s * s))``."""

    def __init__(self, pool_scales: Sequence[int] = (1, 3, 6, 8)) -> None:
        super().__init__([AdaptiveAvgPool2d(s) for s in pool_scales])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([pool(x).flatten(2) for pool in self], dim=2)


def _pyramid_attention(
    key_in: int,
    query_in: int,
    channels: int,
    out_channels: int,
    shared: bool,
    scales: Sequence[int],
) -> SelfAttentionBlock:
    return SelfAttentionBlock(
        key_in,
        query_in,
        channels,
        out_channels,
        share_key_query=shared,
        key_downsample=PPMConcat(scales),
        key_query_norm=True,
        value_out_norm=False,
        matmul_norm=True,
        with_out=True,
    )


def _check_query_scales(query_scales: Sequence[int]) -> None:
    if any(s != 1 for s in query_scales):
        # MMSegmentation max-pools the query for scales > 1 but then reshapes the attended map
        # to the unpooled size, which cannot work; only (1,) is ever used.
        raise ValueError(f"only query scale 1 is supported, got {tuple(query_scales)}")


class AFNB(nn.Module):
    """Asymmetric fusion non-local block: high-level queries attend to pyramid-pooled
    low-level keys/values; the result is concatenated with the high-level map and fused by a
    1x1 conv + BN (no activation).

    Shapes: ``low (N, Cl, H, W)``, ``high (N, Ch, H, W)`` -> ``(N, out_channels, H, W)``.
    """

    def __init__(
        self,
        low_in_channels: int,
        high_in_channels: int,
        channels: int,
        out_channels: int,
        query_scales: Sequence[int] = (1,),
        key_pool_scales: Sequence[int] = (1, 3, 6, 8),
    ) -> None:
        super().__init__()
        _check_query_scales(query_scales)
        self.stages = nn.ModuleList(
            _pyramid_attention(
                low_in_channels, high_in_channels, channels, out_channels, False, key_pool_scales
            )
            for _ in query_scales
        )
        self.bottleneck = ConvBN(out_channels + high_in_channels, out_channels)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        context = torch.stack([stage(high, low) for stage in self.stages]).sum(dim=0)
        return self.bottleneck(torch.cat([context, high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: self-attention (shared query/key projection) over
    pyramid-pooled keys, concatenated with the input and fused by a 1x1 ConvBNReLU.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        out_channels: int,
        query_scales: Sequence[int] = (1,),
        key_pool_scales: Sequence[int] = (1, 3, 6, 8),
    ) -> None:
        super().__init__()
        _check_query_scales(query_scales)
        self.stages = nn.ModuleList(
            _pyramid_attention(
                in_channels, in_channels, channels, out_channels, True, key_pool_scales
            )
            for _ in query_scales
        )
        self.bottleneck = ConvBNReLU(2 * in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        context = torch.stack([stage(x, x) for stage in self.stages]).sum(dim=0)
        return self.bottleneck(torch.cat([context, x], dim=1))


class ANNDecoder(nn.Module):
    """AFNB fusing ``features[in_index[0]]`` (keys) into ``features[in_index[1]]`` (queries),
    dropout, a 3x3 ConvBNReLU to ``channels``, then APNB (MMSegmentation's ``ANNHead``).

    Args:
        channels: output width.
        in_index: (low, high) encoder stages; both must have the same resolution.
        project_channels: width of the attention projections.
        query_scales, key_pool_scales: the non-local blocks' pyramid (only query scale 1).
        dropout: Dropout2d after the fusion block (MMSegmentation reuses the classifier's).

    Output: ``(N, channels, H / in_strides[in_index[1]], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: Sequence[int] = (2, 3),
        project_channels: int = 256,
        query_scales: Sequence[int] = (1,),
        key_pool_scales: Sequence[int] = (1, 3, 6, 8),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        low, high = in_index
        self.in_index = (low, high)
        self.channels = channels
        self.output_stride = in_strides[high]
        c_low, c_high = in_channels[low], in_channels[high]
        self.fusion = AFNB(c_low, c_high, project_channels, c_high, query_scales, key_pool_scales)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.bottleneck = ConvBNReLU(c_high, channels, 3)
        self.context = APNB(channels, project_channels, channels, query_scales, key_pool_scales)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        low, high = (features[i] for i in self.in_index)
        x = self.dropout(self.fusion(low, high))
        return self.context(self.bottleneck(x))
