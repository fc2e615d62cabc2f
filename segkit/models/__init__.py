"""Models: timm encoders, decoders, heads and losses composed by :class:`Segmentor`."""

from segkit.models import encoders  # noqa: F401  (registers our encoders in timm)
from segkit.models.inference import InferenceConfig
from segkit.models.segmentor import AuxiliaryHead, AuxiliaryLoss, Segmentor

__all__ = ["AuxiliaryHead", "AuxiliaryLoss", "InferenceConfig", "Segmentor"]
