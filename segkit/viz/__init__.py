"""Visualisation: palettes, colourised label maps, overlays."""

from segkit.viz.overlay import colorize, overlay, palette_for

__all__ = ["colorize", "overlay", "palette_for"]
