"""Every encoder is a timm model created with ``features_only=True``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
from torch import Tensor, nn

__all__ = ["TimmEncoder"]


class TimmEncoder(nn.Module):
    """A timm backbone returning a list of feature maps.

    Args:
        name: any name in timm's registry (``resnet50d``, ``convnext_tiny``, ``mit_b0``, ...).
        pretrained: load timm's pretrained weights (from the Hugging Face hub; needs internet).
        checkpoint: a local ``.safetensors``/``.pth`` file of timm weights to load instead.
        out_indices: which stages to return (timm's default: all).
        output_stride: 8 or 16 for dilated encoders (DeepLab's "D8"), None for the native stride.
        **kwargs: passed to ``timm.create_model`` (``None`` values are dropped by timm).

    ``channels`` and ``strides`` come from timm's ``feature_info`` and size the decoders.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        checkpoint: str | None = None,
        out_indices: Sequence[int] | None = None,
        output_stride: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not timm.is_model(name.split(".")[0]):  # "arch.pretrained_tag" names are fine too
            raise ValueError(
                f"unknown encoder {name!r}: not in timm's registry "
                f"(see timm.list_models(), e.g. {timm.list_models('resnet5*')[:3]})"
            )
        overlay = None
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"encoder checkpoint not found: {checkpoint}")
            overlay, pretrained = {"file": str(checkpoint)}, True
        try:
            self.model = timm.create_model(
                name,
                pretrained=pretrained,
                pretrained_cfg_overlay=overlay,
                features_only=True,
                out_indices=tuple(out_indices) if out_indices is not None else None,
                output_stride=output_stride,
                **kwargs,
            )
        except (OSError, RuntimeError) as err:
            if pretrained and checkpoint is None:
                raise RuntimeError(
                    f"could not download pretrained weights for {name!r} ({err}). Without "
                    f"internet, download them elsewhere and set model.encoder.checkpoint=PATH."
                ) from err
            raise
        self.name = name
        self.channels: list[int] = list(self.model.feature_info.channels())
        self.strides: list[int] = list(self.model.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> one ``(N, channels[i], H/strides[i], W/strides[i])`` map per stage."""
        return self.model(x)
