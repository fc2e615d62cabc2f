"""Data: datasets, label specifications, albumentations pipelines and the DataModule."""

from segkit.data.collate import SegCollate
from segkit.data.datamodule import SegDataModule
from segkit.data.labels import LabelError, LabelSpec

__all__ = ["LabelError", "LabelSpec", "SegCollate", "SegDataModule"]
