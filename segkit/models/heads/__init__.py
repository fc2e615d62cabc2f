"""Task heads on a decoded map. Each maps ``(N, C, h, w)`` to its output and owns its loss:
``forward(x)``, ``loss(output, batch, prefix) -> dict``, ``postprocess(output_of_one_sample)``."""

from segkit.models.heads.depth import DepthHead
from segkit.models.heads.depth_bins import BinsDepthHead
from segkit.models.heads.seg_head import SegHead

__all__ = ["BinsDepthHead", "DepthHead", "SegHead"]
