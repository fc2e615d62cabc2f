"""A LayerNorm over the channels of each pyramid level (MMSegmentation's backbone output norms)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class LevelNorm(nn.Module):
    """One LayerNorm over the channels of each selected feature map, as MMSegmentation's Swin
    (``norm0`` ... ``norm3``) and mmpretrain's ConvNeXt apply to every returned stage; timm's
    ``features_only`` models return the stages un-normalised.

    Args:
        in_channels, in_strides: of every encoder output.
        levels: which outputs to normalise (default: all); the others pass through.
        eps: LayerNorm epsilon (Swin: 1e-5, ConvNeXt: 1e-6).

    Inputs and outputs: maps ``(N, in_channels[i], H_i, W_i)``, shapes unchanged. ``norms.<i>``
    holds the norm of output ``i``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        levels: Sequence[int] | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.channels = list(in_channels)
        self.strides = list(in_strides)
        levels = range(len(in_channels)) if levels is None else levels
        self.norms = nn.ModuleDict({str(i): nn.LayerNorm(in_channels[i], eps=eps) for i in levels})

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outs = list(features)
        for key, norm in self.norms.items():
            x = outs[int(key)]
            outs[int(key)] = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
        return outs
