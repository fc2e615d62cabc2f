"""Colouring label maps and blending them over images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["colorize", "overlay", "palette_for"]


def palette_for(num_classes: int, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours: the given palette, or distinct colours drawn from a
    fixed seed when there is none."""
    if palette is not None and len(palette) >= num_classes:
        return np.asarray(palette[:num_classes], dtype=np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (num_classes, 3), dtype=np.uint8)


def colorize(labels: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """``(H, W)`` class ids -> ``(H, W, 3)`` uint8 colours (ignored or unknown ids black)."""
    table = np.zeros((max(int(labels.max(initial=0)) + 1, len(palette)), 3), np.uint8)
    table[: len(palette)] = palette
    if ignore_index < len(table):
        table[ignore_index] = 0
    return table[labels]


def overlay(
    image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Blend the colourised ``labels`` over an ``(H, W, 3)`` uint8 ``image`` with opacity ``alpha``."""
    colour = colorize(labels, palette).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)
