"""NYU Depth V2 (depth estimation): the BTS-style release regrouped by split, as MMSegmentation.

Raw input (``src``: ``nyu.zip``, a folder holding it, or its unzipped ``nyu/`` folder)::

    nyu/nyu_{train,test}.txt         lines ``<scene>/rgb_<n>.jpg <scene>/sync_depth_<n>.png ...``
    nyu/<scene>/rgb_<n>.jpg
    nyu/<scene>/sync_depth_<n>.png   16-bit depth in millimetres

Output (``dst``), files copied unchanged (hard links where possible)::

    dst/images/{train,test}/<scene>_<n>.jpg
    dst/annotations/{train,test}/<scene>_<n>.png

The raw files are left in place (MMSegmentation moves them).
"""

from __future__ import annotations

from pathlib import Path

from segkit.data.convert.outputs import link_or_copy, write_bytes
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import read_member

__all__ = ["convert_nyu"]


def convert_nyu(src: str | Path, dst: str | Path, *, workers: int = 2) -> ConversionReport:
    """Copy the images and depth maps listed in ``nyu_train.txt`` and ``nyu_test.txt``.

    Args:
        src: ``nyu.zip``, the folder holding it, or the unzipped ``nyu`` folder.
        dst: dataset root to write to.
        workers: processes copying files.
    """
    src, dst = Path(src), Path(dst)
    archive, root = _locate(src)
    jobs = []
    for phase in ("train", "test"):
        listing = f"nyu_{phase}.txt"
        text = (
            read_member(archive, f"nyu/{listing}") if archive else (root / listing).read_bytes()
        ).decode()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 2:
                continue
            for item, folder, marker in (
                (fields[0], "images", "/rgb"),
                (fields[1], "annotations", "/sync_depth"),
            ):
                item = item.strip().strip("/")
                out = dst / folder / phase / item.replace(marker, "")
                if archive:
                    jobs.append(Job(item, _copy_member, (archive, f"nyu/{item}", out), (out,)))
                else:
                    jobs.append(Job(item, link_or_copy, (root / item, out), (out,)))
    return run_jobs("nyu", jobs, dst, workers=workers)


def _locate(src: Path) -> tuple[Path | None, Path | None]:
    """``(zip, None)`` or ``(None, folder with nyu_train.txt)``."""
    if src.is_file():
        return src, None
    for folder in (src, src / "nyu"):
        if (folder / "nyu_train.txt").is_file():
            return None, folder
    if (src / "nyu.zip").is_file():
        return src / "nyu.zip", None
    raise FileNotFoundError(
        f"{src}: expected nyu.zip, or a folder with nyu_train.txt and nyu_test.txt"
    )


def _copy_member(archive: Path, member: str, out: Path) -> Path:
    return write_bytes(out, read_member(archive, member))
