"""CCNet (Huang et al., CCNet: Criss-Cross Attention for Semantic Segmentation, ICCV 2019)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from segkit.models.decoders.context_blocks import ContextFCNDecoder
from segkit.models.ops.criss_cross_attention import CrissCrossAttention


class CCDecoder(ContextFCNDecoder):
    """FCN head with recurrent criss-cross attention (one module applied ``recurrence`` times)
    between its two 3x3 convs (MMSegmentation's ``CCHead``).

    Output: ``(N, channels, H / in_strides[in_index], W / ...)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        recurrence: int = 2,
        concat_input: bool = True,
    ) -> None:
        super().__init__(in_channels, in_strides, channels, in_index, concat_input=concat_input)
        self.recurrence = recurrence
        self.context = CrissCrossAttention(channels)

    def apply_context(self, x: Tensor) -> Tensor:
        for _ in range(self.recurrence):
            x = self.context(x)
        return x
