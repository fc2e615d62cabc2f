"""Encoders: timm models with ``features_only=True``; our own architectures join timm's registry."""

from segkit.models.encoders import mit  # noqa: F401  (registers mit_b0 ... mit_b5 in timm)
from segkit.models.encoders.timm_encoder import TimmEncoder

__all__ = ["TimmEncoder"]
