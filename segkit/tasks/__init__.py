"""LightningModules: the training and evaluation logic."""

from segkit.tasks.segmentation import SegmentationTask

__all__ = ["SegmentationTask"]
