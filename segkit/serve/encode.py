"""Predictions -> response fields: base64 PNGs of labels, overlay and depth; class counts."""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from segkit.viz import colorize_depth, overlay, palette_for

__all__ = ["depth_fields", "label_fields", "png_base64"]

# matplotlib (the "turbo" colour map) is not a dependency of the serve extra.
_DEPTH_CMAP = "turbo" if importlib.util.find_spec("matplotlib") else "gray"
# Fast zlib level: PNG size matters less here than the time spent before the answer.
_PNG_COMPRESS_LEVEL = 1


def png_base64(image: Image.Image) -> str:
    """A PIL image as a base64 PNG string."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def label_fields(
    image: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str] | None,
    palette: Sequence[Sequence[int]] | None,
    with_overlay: bool,
    alpha: float,
) -> dict[str, Any]:
    """Response fields of a label map.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the request's image.
        labels: ``(H, W)`` int class ids; negative = no class matched (open vocabulary).
        classes: the names ids index into (``None``: ids are named by their number).
        palette: colours per class (``None``: generated, as ``segkit-infer`` does).
        with_overlay: also blend the colours over the image.
        alpha: overlay opacity.

    Returns ``labels_png`` (8-bit palette PNG up to 255 classes with 255 = no class, as
    ``segkit-infer`` writes; else 16-bit with 65535 = no class), ``class_counts``,
    ``unmatched_pixels`` and optionally ``overlay_png``.
    """
    unmatched = labels < 0
    num_classes = len(classes) if classes else int(labels.max(initial=-1)) + 1
    colours = palette_for(max(num_classes, 1), palette)
    if num_classes <= 255:
        png = Image.fromarray(np.where(unmatched, 255, labels).astype(np.uint8), mode="P")
        flat = colours.astype(np.uint8).ravel().tolist()
        png.putpalette(flat + [0] * (768 - len(flat)))
    else:
        png = Image.fromarray(np.where(unmatched, 65535, labels).astype(np.uint16))
    counts = np.bincount(labels[~unmatched].ravel(), minlength=num_classes)
    class_counts: dict[str, int] = {}
    for idx in np.flatnonzero(counts):
        name = classes[idx] if classes and idx < len(classes) else str(idx)
        class_counts[name] = class_counts.get(name, 0) + int(counts[idx])  # repeated names add up
    fields: dict[str, Any] = {
        "labels_png": png_base64(png),
        "class_counts": class_counts,
        "unmatched_pixels": int(unmatched.sum()),
    }
    if with_overlay:
        blended = overlay(image, np.where(unmatched, 0, labels), colours, alpha=alpha)
        blended[unmatched] = image[unmatched]  # unmatched pixels stay uncoloured
        fields["overlay_png"] = png_base64(Image.fromarray(blended))
    return fields


def depth_fields(depth: np.ndarray, with_preview: bool) -> dict[str, Any]:
    """Response fields of an ``(H, W)`` depth map in metres: ``depth_png`` (16-bit PNG of
    millimetres, 0 = invalid, 65.535 m at most: NYU/KITTI's convention, as ``segkit-infer``),
    ``depth_min_m``/``depth_max_m`` (over finite values) and optionally ``depth_preview_png``."""
    finite = depth[np.isfinite(depth)]
    millimetres = np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, 65535).astype(np.uint16)
    fields: dict[str, Any] = {
        "depth_png": png_base64(Image.fromarray(millimetres)),
        "depth_min_m": float(finite.min()) if finite.size else None,
        "depth_max_m": float(finite.max()) if finite.size else None,
    }
    if with_preview:
        fields["depth_preview_png"] = png_base64(
            Image.fromarray(colorize_depth(depth, cmap=_DEPTH_CMAP))
        )
    return fields
