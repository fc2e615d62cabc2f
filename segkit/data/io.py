"""Reading images and label maps, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["CorruptFileError", "read_depth", "read_image", "read_mask"]

cv2.setNumThreads(0)  # workers are the parallelism; OpenCV's own threads only oversubscribe


class CorruptFileError(ValueError):
    """An image or label file that cannot be decoded."""


def read_image(path: str | Path) -> np.ndarray:
    """An RGB image as ``(H, W, 3)`` uint8 (grey and RGBA files are converted)."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CorruptFileError(f"cannot decode image {path} (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path, rgb: bool = False) -> np.ndarray:
    """A label map as ``(H, W)`` integers, palette indices kept (Pascal VOC's PNGs are palette
    images: their pixel values are the class ids, not the colours); ``rgb``: a colour-coded map
    as ``(H, W, 3)`` uint8."""
    try:
        with Image.open(path) as im:
            if rgb:
                return np.asarray(im.convert("RGB"))
            if im.mode not in ("P", "L", "I", "I;16", "I;16B", "1"):  # I;16: 16-bit PNG/TIFF
                raise CorruptFileError(
                    f"label map {path} has mode {im.mode!r}; expected a single-channel PNG "
                    "of class ids (convert colour masks to ids first)"
                )
            mask = np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"label map not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise CorruptFileError(f"cannot decode label map {path}: {err}") from err
    return mask


def read_depth(path: str | Path, scale: float) -> np.ndarray:
    """A depth map as ``(H, W)`` float32 metres: the stored integers divided by ``scale``
    (NYU Depth v2 / KITTI 16-bit PNGs: 1000 and 256). 0 stays 0 and means "no measurement"."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise FileNotFoundError(f"depth map not found: {path}")
    depth = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if depth is None or depth.ndim != 2:
        raise CorruptFileError(f"cannot decode depth map {path} (expected a single-channel PNG)")
    return depth.astype(np.float32) / scale
