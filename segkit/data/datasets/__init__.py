"""Datasets: one generic folder reader configured per dataset in YAML, and the generated shapes."""

from segkit.data.datasets.concat import ConcatSplits
from segkit.data.datasets.folder import DatasetNotFoundError, SegmentationFolder
from segkit.data.datasets.shapes import Shapes

__all__ = ["ConcatSplits", "DatasetNotFoundError", "SegmentationFolder", "Shapes"]
