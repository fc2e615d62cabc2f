"""REFUGE (optic disc and cup): images and masks out of the challenge zips, as MMSegmentation.

Raw input (``src``: the folder holding the challenge's zips, read directly)::

    src/REFUGE-Training400.zip, src/Annotation-Training400.zip,
    src/REFUGE-Validation400.zip, src/REFUGE-Validation400-GT.zip,
    src/REFUGE-Test400.zip, src/REFUGE-Test-GT.zip

A zip's split is the first of ``training``, ``test``, ``validation`` in its lower-cased name; it
holds annotations when its name contains ``Anno`` or ``GT``, else images. The ``.jpg`` and
``.bmp`` files of its innermost folders are taken, except under ``*Illustration*`` and
``__MACOSX`` folders.

Output (``dst``)::

    dst/images/{training,validation,test}/<name>.png        RGB, re-encoded as PNG
    dst/annotations/{training,validation,test}/<name>.png   8-bit grey

Label values, from the masks' grey levels (first channel): 255 background -> 0, 128 optic disc
-> 2 (the disc ring outside the cup), 0 optic cup -> 1; other levels are kept as they are.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from segkit.data.convert.outputs import write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import (
    decode_color,
    find_archives,
    list_dirs,
    list_members,
    read_member,
)

__all__ = ["convert_refuge"]

_SPLITS = ("training", "test", "validation")


def convert_refuge(src: str | Path, dst: str | Path, *, workers: int = 2) -> ConversionReport:
    """Convert every REFUGE zip in ``src``.

    Args:
        src: folder holding the zips.
        dst: dataset root to write to.
        workers: processes converting files.
    """
    src, dst = Path(src), Path(dst)
    archives = find_archives(src)
    if not archives:
        raise FileNotFoundError(f"no zips in {src}: expected the REFUGE challenge archives")
    jobs = []
    for archive in archives:
        split = next((s for s in _SPLITS if s in archive.name.lower()), None)
        if split is None:
            continue
        kind = "annotations" if "Anno" in archive.name or "GT" in archive.name else "images"
        dirs = list_dirs(archive)
        leaves = {d for d in dirs if not any(o.startswith(f"{d}/") for o in dirs)} or {"."}
        for member in sorted(list_members(archive)):
            path = PurePosixPath(member)
            folder = path.parent.as_posix()
            if path.suffix not in (".jpg", ".bmp"):
                continue
            if folder not in leaves or "Illustration" in folder or "MACOSX" in folder:
                continue
            out = dst / kind / split / f"{path.stem}.png"
            key = f"{archive.name}/{member}"
            jobs.append(
                Job(key, _convert_one, (archive, member, out, kind == "annotations"), (out,))
            )
    return run_jobs("refuge", jobs, dst, workers=workers)


def _convert_one(archive: Path, member: str, out: Path, is_label: bool) -> Path:
    image = decode_color(read_member(archive, member), member)
    if is_label:
        grey = image[..., 0].copy()
        grey[grey == 0] = 1
        grey[grey == 128] = 2
        grey[grey == 255] = 0
        image = grey
    return write_png(out, np.ascontiguousarray(image))
