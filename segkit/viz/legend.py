"""A palette legend: one colour swatch and name per class, to place beside overlays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["palette_legend"]


def palette_legend(
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | np.ndarray,
    row_height: int = 18,
    swatch: int = 14,
    max_height: int | None = None,
    column_width: int | None = None,
) -> np.ndarray:
    """A legend image ``(H, W, 3)`` uint8 on white: for class ``i``, a ``swatch x swatch`` square
    of ``palette[i]`` (with a grey outline), then its name.

    Geometry (for callers placing or reading it): classes run down columns of ``rows =
    max_height // row_height`` rows (all classes in one column when ``max_height`` is None);
    class ``i`` sits in column ``i // rows``, row ``i % rows``; its swatch's top-left pixel is
    ``(y, x) = (row * row_height + (row_height - swatch) // 2, col * column_width + 4)``.
    ``column_width`` defaults to fit the longest name. Returns an array like the other image
    helpers of :mod:`segkit.viz`, so it can be concatenated to a sample grid.
    """
    names = [str(n) for n in class_names]
    colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if len(colours) < len(names):
        raise ValueError(f"{len(names)} class names but only {len(colours)} palette colours")
    if not names:
        raise ValueError("no classes to draw a legend for")
    if swatch > row_height:
        raise ValueError(f"swatch ({swatch} px) must fit in row_height ({row_height} px)")
    font = ImageFont.load_default(size=max(8, row_height - 6))
    text_x = 4 + swatch + 6
    if column_width is None:
        widest = max(int(np.ceil(font.getlength(n))) for n in names)
        column_width = text_x + widest + 8
    rows = len(names) if max_height is None else max(1, max_height // row_height)
    rows = min(rows, len(names))
    columns = -(-len(names) // rows)
    image = Image.new("RGB", (columns * column_width, rows * row_height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    top = (row_height - swatch) // 2
    for i, name in enumerate(names):
        col, row = divmod(i, rows)
        x, y = col * column_width, row * row_height
        box = (x + 4, y + top, x + 4 + swatch - 1, y + top + swatch - 1)
        draw.rectangle(box, fill=tuple(int(c) for c in colours[i]), outline=(128, 128, 128))
        draw.text((x + text_x, y + row_height / 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(image)
