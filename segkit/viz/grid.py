"""Tiling samples into one image, to look at a dataset after its augmentation pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segkit.viz.overlay import overlay

__all__ = ["sample_grid"]


def sample_grid(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
    palette: np.ndarray,
    ignore_index: int = 255,
    columns: int = 4,
    alpha: float = 0.5,
    gap: int = 4,
) -> np.ndarray:
    """Each ``(H, W, 3)`` uint8 image beside its mask overlay (ignored pixels unblended), tiled
    ``columns`` pairs per row on a white background; cells take the largest sample's size.
    Returns ``(H', W', 3)`` uint8."""
    if not images:
        raise ValueError("no samples to tile")
    cell_h = max(im.shape[0] for im in images)
    cell_w = max(im.shape[1] for im in images)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    pair_w = 2 * cell_w + gap
    grid = np.full(
        (rows * (cell_h + gap) + gap, columns * (pair_w + 2 * gap) + gap, 3), 255, np.uint8
    )
    for k, (image, mask) in enumerate(zip(images, masks)):
        r, c = divmod(k, columns)
        y = gap + r * (cell_h + gap)
        x = gap + c * (pair_w + 2 * gap)
        h, w = image.shape[:2]
        grid[y : y + h, x : x + w] = image
        if mask is not None:
            blended = overlay(image, mask, palette, alpha)
            blended[mask == ignore_index] = image[mask == ignore_index]
            grid[y : y + h, x + cell_w + gap : x + cell_w + gap + w] = blended
    return grid
