"""Metrics: torchmetrics ``Metric``s with exact, process-synced state."""

from segkit.metrics.depth import DepthMetrics
from segkit.metrics.segmentation import SegMetrics

__all__ = ["DepthMetrics", "SegMetrics"]
