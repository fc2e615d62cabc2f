"""Request images -> ``(H, W, 3)`` uint8 RGB arrays, with the pixel limit checked before decoding."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["BadImageError", "ImageTooLargeError", "decode_base64", "decode_image"]


class BadImageError(ValueError):
    """The bytes are not an image PIL can read, or the image is corrupt or truncated (HTTP 415)."""


class ImageTooLargeError(ValueError):
    """The image declares more pixels than allowed (HTTP 413)."""


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 string, plain or as a ``data:image/...;base64,`` URL.

    Raises:
        ValueError: the text is not valid base64 (HTTP 400).
    """
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise ValueError("image: a data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        # validate=True: stray characters are an error, not silently skipped.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"image is not valid base64: {err}") from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode PNG/JPEG/... bytes into an ``(H, W, 3)`` uint8 RGB array (EXIF orientation applied,
    as ``segkit-infer``'s OpenCV reader does; grey, palette and RGBA images converted).

    The size is read from the header first: ``Image.open`` parses only the header, so an image
    declaring more than ``max_pixels`` pixels (a decompression bomb: a few hundred bytes
    claiming 30000 x 30000) is refused before any pixel memory is allocated.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels.
        BadImageError: empty, not an image, corrupt or truncated.
    """
    if not data:
        raise BadImageError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limit applies below; PIL's warning about large images would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:  # PIL's own hard limit, above ours
        raise ImageTooLargeError(f"image too large: {err}") from None
    except UnidentifiedImageError:
        raise BadImageError(
            f"not an image PIL can read (first bytes {data[:8]!r}); send PNG, JPEG, BMP, TIFF "
            "or WebP"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # a header that parses but is broken
        raise BadImageError(f"corrupt image header: {err}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"image too large: {width}x{height} = {width * height} pixels, the limit is "
                f"{max_pixels} (serve.max_pixels)"
            )
        if width == 0 or height == 0:
            raise BadImageError(f"the image has no pixels ({width}x{height})")
        try:
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise BadImageError(f"corrupt or truncated {image.format} image: {err}") from None
    return np.asarray(rgb, dtype=np.uint8)
