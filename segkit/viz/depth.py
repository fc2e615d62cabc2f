"""Depth maps as colour images."""

from __future__ import annotations

import numpy as np

__all__ = ["colorize_depth"]


def colorize_depth(
    depth: np.ndarray,
    min_depth: float | None = None,
    max_depth: float | None = None,
    cmap: str = "turbo",
) -> np.ndarray:
    """``(H, W)`` depth (metres; 0 or negative = invalid) -> ``(H, W, 3)`` uint8 colours, near
    = warm, far = cool by default; invalid pixels black.

    The range defaults to the valid pixels' 2nd-98th percentiles, so one outlier does not wash
    the image out; pass ``min_depth``/``max_depth`` to compare maps on one scale (prediction
    beside ground truth). ``cmap``: any matplotlib colormap name, or ``"gray"`` without matplotlib.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if valid.any():
        lo = float(np.percentile(depth[valid], 2)) if min_depth is None else float(min_depth)
        hi = float(np.percentile(depth[valid], 98)) if max_depth is None else float(max_depth)
    else:
        lo, hi = 0.0, 1.0
    scaled = np.clip((depth - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    if cmap == "gray":
        rgb = np.repeat((255 * (1 - scaled))[..., None], 3, axis=2)
    else:
        from matplotlib import colormaps

        rgb = 255 * colormaps[cmap](1 - scaled)[..., :3]  # near = high end of the map
    out = rgb.round().astype(np.uint8)
    out[~valid] = 0
    return out
