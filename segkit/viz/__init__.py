"""Visualisation: palettes, colourised label maps, overlays, legends, depth colour maps,
confusion matrices."""

from segkit.viz.confusion import confusion_matrix, figure_to_array, normalize_confmat
from segkit.viz.depth import colorize_depth
from segkit.viz.grid import sample_grid
from segkit.viz.legend import palette_legend
from segkit.viz.overlay import colorize, overlay, palette_for

__all__ = [
    "colorize",
    "colorize_depth",
    "confusion_matrix",
    "figure_to_array",
    "normalize_confmat",
    "overlay",
    "palette_for",
    "palette_legend",
    "sample_grid",
]
