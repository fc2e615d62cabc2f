"""Reading the raw inputs: publisher archives (zip, tar), their members, and raw image decoding.

Converters read archive members directly (no extraction to a temporary folder): a job names the
archive and the member, and the worker process reads it. Open archives are cached per process (a
zip's directory is read once per worker, never shared across a fork).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "decode_color",
    "decode_gif_blue",
    "find_archives",
    "list_dirs",
    "list_members",
    "read_member",
    "require",
]

_OPEN: dict[tuple[int, str], zipfile.ZipFile | tarfile.TarFile] = {}


def require(path: str | Path, what: str) -> Path:
    """``path`` if it exists, else a ``FileNotFoundError`` saying what was expected there."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: expected {what}")
    return path


def find_archives(folder: str | Path, pattern: str = "*.zip") -> list[Path]:
    """The archives in ``folder`` matching ``pattern``, sorted by name."""
    return sorted(p for p in Path(folder).glob(pattern) if p.is_file())


def list_members(archive: str | Path) -> list[str]:
    """Names of the regular files in a zip or tar archive (``/``-separated, archive order)."""
    handle = _open(archive)
    if isinstance(handle, zipfile.ZipFile):
        return [i.filename for i in handle.infolist() if not i.is_dir()]
    return [m.name for m in handle.getmembers() if m.isfile()]


def list_dirs(archive: str | Path) -> set[str]:
    """Every folder of a zip archive, from its entries and from the paths of its files."""
    handle = _open(archive)
    assert isinstance(handle, zipfile.ZipFile)
    dirs = set()
    for name in handle.namelist():
        parts = name.rstrip("/").split("/")
        stop = len(parts) if name.endswith("/") else len(parts) - 1
        for i in range(1, stop + 1):
            dirs.add("/".join(parts[:i]))
    return dirs


def read_member(archive: str | Path, member: str) -> bytes:
    """The bytes of one member of a zip or tar archive; ``*.gz`` members are decompressed."""
    handle = _open(archive)
    if isinstance(handle, zipfile.ZipFile):
        data = handle.read(member)
    else:
        stream = handle.extractfile(member)
        if stream is None:
            raise FileNotFoundError(f"{member} is not a file in {archive}")
        data = stream.read()
    if member.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def decode_color(data: bytes, name: str = "image") -> np.ndarray:
    """An encoded image (PNG, JPEG, TIFF, PPM, BMP) as ``(H, W, 3)`` uint8 **BGR**.

    OpenCV's colour decoding, as ``mmcv.imread`` does: grey images are repeated over three
    channels, alpha is dropped, 16-bit values are scaled to 8 bits.
    """
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {name} (corrupt, or not an image)")
    return image


def decode_gif_blue(data: bytes) -> np.ndarray:
    """The blue channel of a GIF's first frame as ``(H, W)`` uint8 (channel 0 of OpenCV's BGR
    frame, which MMSeg reads with ``cv2.VideoCapture``)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))[..., 2].copy()


def _open(archive: str | Path) -> zipfile.ZipFile | tarfile.TarFile:
    key = (os.getpid(), str(archive))
    handle = _OPEN.get(key)
    if handle is None:
        path = require(archive, "a zip or tar archive")
        if zipfile.is_zipfile(path):
            handle = zipfile.ZipFile(path)
        elif tarfile.is_tarfile(path):
            handle = tarfile.open(path)  # noqa: SIM115 (kept open: cached per process)
        else:
            raise ValueError(f"{path} is neither a zip nor a tar archive")
        if len(_OPEN) >= 8:
            _OPEN.clear()
        _OPEN[key] = handle
    return handle
