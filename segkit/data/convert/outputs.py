"""Writing the converted dataset: atomic image writes, links to untouched files, split lists.

Every file is written under a hidden temporary name in its folder and renamed into place, so a
file that exists is complete (the runner skips existing outputs on a re-run).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["link_dir", "link_or_copy", "write_bytes", "write_list", "write_pil", "write_png"]


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write ``(H, W)`` uint8 (grey) or ``(H, W, 3)`` uint8 **BGR** as PNG, atomically."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    return write_bytes(path, data.tobytes())


def write_pil(path: str | Path, image, fmt: str, **params) -> Path:
    """Save a PIL image in format ``fmt`` (``"PNG"``, ``"JPEG"``) atomically."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        image.save(tmp, format=fmt, **params)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating its folder."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def link_or_copy(src: str | Path, dst: str | Path) -> Path:
    """Hard-link ``src`` to ``dst`` (no extra space), or copy it where links are impossible."""
    dst = Path(dst)
    tmp = _temporary(dst)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def link_dir(src: str | Path, dst: str | Path) -> bool:
    """Make ``dst`` a symbolic link to the folder ``src`` unless ``dst`` exists or is ``src``.

    Used to give a converted root the raw folders it reads unchanged (e.g. ``leftImg8bit``).
    Returns whether a link was made.
    """
    src, dst = Path(src).resolve(), Path(dst)
    if dst.exists() or dst.is_symlink() or dst.resolve() == src:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src, target_is_directory=True)
    return True


def write_list(path: str | Path, names: Iterable[str]) -> Path:
    """A split list: one name per line, each line ending with a newline."""
    return write_bytes(path, "".join(f"{n}\n" for n in names).encode())


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.part")
