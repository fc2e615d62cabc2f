"""What a decoder may return besides a plain feature map."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor


class DecoderOutput(NamedTuple):
    """A decoded map plus intermediate class logits that need their own loss.

    Cascade decoders (OCRNet's soft object regions, ICNet's branches, ...) return this.
    ``out`` goes to the heads; each ``aux[name]`` (``(N, num_classes, h, w)`` logits) is
    supervised, in training only, by the :class:`~segkit.models.segmentor.AuxiliaryLoss` named
    ``name`` in the model's ``auxiliary`` config.
    """

    out: Any
    aux: dict[str, Tensor]
