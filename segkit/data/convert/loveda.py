"""LoveDA: the Rural and Urban parts of each split gathered into one folder, as MMSegmentation does.

Raw input (``src``: the publisher's zips, read directly)::

    src/{Train,Val,Test}.zip     <Split>/{Rural,Urban}/images_png/<n>.png
                                 <Split>/{Rural,Urban}/masks_png/<n>.png   (not in Test)

Output (``dst``), files copied unchanged (the Rural and Urban numbers do not overlap)::

    dst/img_dir/{train,val,test}/<n>.png
    dst/ann_dir/{train,val}/<n>.png      8-bit grey: 0 no-data, 1..7 classes (background,
                                         building, road, water, barren, forest, agricultural);
                                         the dataset uses ``reduce_zero_label``
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from segkit.data.convert.outputs import write_bytes
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import list_members, read_member, require

__all__ = ["convert_loveda"]

_FOLDERS = {"images_png": "img_dir", "masks_png": "ann_dir"}


def convert_loveda(src: str | Path, dst: str | Path, *, workers: int = 2) -> ConversionReport:
    """Copy LoveDA's images and masks out of ``Train.zip``, ``Val.zip`` and ``Test.zip``.

    Args:
        src: folder holding the three zips.
        dst: dataset root to write to.
        workers: processes copying files.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for split in ("Train", "Val", "Test"):
        archive = require(src / f"{split}.zip", f"LoveDA's {split}.zip")
        for member in list_members(archive):
            parts = PurePosixPath(member).parts
            if len(parts) != 4 or parts[0] != split or parts[1] not in ("Rural", "Urban"):
                continue
            folder = _FOLDERS.get(parts[2])
            if folder is None or (split == "Test" and folder == "ann_dir"):
                continue
            out = dst / folder / split.lower() / parts[3]
            jobs.append(Job(f"{split}.zip/{member}", _copy_member, (archive, member, out), (out,)))
    return run_jobs("loveda", jobs, dst, workers=workers)


def _copy_member(archive: Path, member: str, out: Path) -> Path:
    return write_bytes(out, read_member(archive, member))
