"""A decoder that passes one encoder feature map through unchanged."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["SelectFeature"]


class SelectFeature(nn.Module):
    """Returns ``features[index]``: for encoders whose output is already the decoded map (CLIP's
    dense embeddings in training-free open-vocabulary models).

    Args:
        in_channels, in_strides: the encoder's (given by the segmentor).
        index: which feature map to return (default: the last).
    """

    def __init__(
        self, in_channels: Sequence[int], in_strides: Sequence[int], index: int = -1
    ) -> None:
        super().__init__()
        self.index = index
        self.channels = int(in_channels[index])
        self.stride = int(in_strides[index])

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return features[self.index]
