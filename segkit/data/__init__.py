"""Data: datasets, label specifications, albumentations pipelines and the DataModule."""

from segkit.data.collate import SegCollate
from segkit.data.datamodule import SegDataModule
from segkit.data.labels import LabelError, LabelSpec
from segkit.data.mixing import MixDataModule

__all__ = ["LabelError", "LabelSpec", "MixDataModule", "SegCollate", "SegDataModule"]
