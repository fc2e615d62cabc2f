"""Weights in and out: reading weight files safely, and converting MMSegmentation and
Hugging Face transformers checkpoints into segkit checkpoints.

A conversion is data: ``conf/convert/<source>/<name>.yaml`` names the segkit model config to
build and the renaming rules (plus any tensor transforms) from the source's keys to segkit's.
"""

from segkit.checkpoints.convert import (
    ConversionError,
    ConversionSpec,
    convert_checkpoint,
    convert_state_dict,
    load_spec,
)
from segkit.checkpoints.io import load_weights_into, read_state_dict, save_checkpoint

__all__ = [
    "ConversionError",
    "ConversionSpec",
    "convert_checkpoint",
    "convert_state_dict",
    "load_spec",
    "load_weights_into",
    "read_state_dict",
    "save_checkpoint",
]
