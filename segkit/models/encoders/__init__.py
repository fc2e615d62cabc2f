"""Encoders: timm models with ``features_only=True``; our own architectures join timm's registry.

Importing this package imports every module in it, so each architecture written in segkit
(``mit_b0``, ...) is registered with ``timm.create_model`` before any config names it.
"""

import importlib
import pkgutil

from segkit.models.encoders.timm_encoder import TimmEncoder

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TimmEncoder"]
