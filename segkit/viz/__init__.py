"""Visualisation: palettes, colourised label maps, overlays."""

from segkit.viz.grid import sample_grid
from segkit.viz.overlay import colorize, overlay, palette_for

__all__ = ["colorize", "overlay", "palette_for", "sample_grid"]
