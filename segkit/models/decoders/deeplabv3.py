"""DeepLabV3: atrous spatial pyramid pooling (plain 3x3 atrous convs) on the deepest map."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from segkit.models.decoders.deeplabv3plus import ASPP


class DeepLabV3Decoder(nn.Module):
    """ASPP (image pooling, a 1x1 conv, 3x3 convs at ``dilations[1:]``, 3x3 fusion conv) on
    ``features[in_index]``, as MMSegmentation's ``ASPPHead``.

    Output: ``(N, channels, H / in_strides[in_index], W / ...)`` (stride 8 for a ResNet-D8).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        channels: int = 512,
        in_index: int = -1,
        dilations: Sequence[int] = (1, 12, 24, 36),
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.output_stride = in_strides[in_index]
        self.aspp = ASPP(in_channels[in_index], channels, dilations, separable=False)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.aspp(features[self.in_index])
