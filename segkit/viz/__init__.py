"""Visualisation: palettes, colourised label maps, overlays, depth colour maps."""

from segkit.viz.depth import colorize_depth
from segkit.viz.grid import sample_grid
from segkit.viz.overlay import colorize, overlay, palette_for

__all__ = ["colorize", "colorize_depth", "overlay", "palette_for", "sample_grid"]
