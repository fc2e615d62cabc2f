"""segkit: semantic segmentation on PyTorch Lightning, Hydra, timm, torchmetrics and albumentations."""

from segkit.api import from_clip, load
from segkit.models import Segmentor

__version__ = "0.1.0"
__all__ = ["Segmentor", "__version__", "from_clip", "load"]
