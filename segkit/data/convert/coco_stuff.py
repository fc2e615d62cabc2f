"""COCO-Stuff 10k and 164k: label maps with 171 consecutive class ids, as MMSegmentation prepares.

COCO-Stuff numbers its 182 classes (91 thing + 91 stuff ids) with gaps: 11 thing ids are unused.
The conversion closes the gaps so the 171 used classes are consecutive. As in MMSegmentation, a
value outside the table is left unchanged.

**10k** raw input (``src``: ``cocostuff-10k-v1.1.zip`` unzipped)::

    src/images/<name>.jpg
    src/annotations/<name>.mat          ``S``: 0 unlabelled, 1..182 class ids
    src/imageLists/{train,test}.txt     9,000 / 1,000 names

Output (``dst``, may be ``src``)::

    dst/images/{train2014,test2014}/<name>.jpg                    (hard links, or copies)
    dst/annotations/{train2014,test2014}/<name>_labelTrainIds.png  8-bit grey: 0 unlabelled,
        1..171 classes (the 10k datasets use ``reduce_zero_label``)

**164k** raw input (``src``: ``train2017.zip``, ``val2017.zip`` in ``images/`` and
``stuffthingmaps_trainval2017.zip`` in ``annotations/``, unzipped)::

    src/images/{train2017,val2017}/<name>.jpg
    src/annotations/{train2017,val2017}/<name>.png      0..181 class ids, 255 unlabelled

Output (``dst``, may be ``src``)::

    dst/annotations/{train2017,val2017}/<name>_labelTrainIds.png   8-bit grey: 0..170, 255 ignored
    dst/images/{train2017,val2017}/<name>.jpg    (hard links, or copies, when dst is not src)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segkit.data.convert.outputs import link_or_copy, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs

__all__ = ["convert_coco_stuff10k", "convert_coco_stuff164k"]

log = logging.getLogger("segkit.data.convert")

# The 11 unused thing ids of COCO, 1-based (10k's .mat files); 164k's maps are 0-based.
_UNUSED_THING_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
_SIZES = {"10k": 10000, "164k": 123287}


def convert_coco_stuff10k(
    src: str | Path, dst: str | Path, *, workers: int = 2
) -> ConversionReport:
    """Convert the 10k release's ``annotations/*.mat`` and place its images by split.

    Args:
        src: the unzipped ``cocostuff-10k-v1.1`` folder.
        dst: the root to write to (``src`` is fine).
        workers: processes converting files.
    """
    try:
        import scipy.io  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "reading COCO-Stuff 10k's .mat files needs scipy: pip install scipy"
        ) from err
    src, dst = Path(src), Path(dst)
    lookup = _lookup(first_id=1, last_id=182)
    jobs = []
    total = 0
    for split, folder in (("train", "train2014"), ("test", "test2014")):
        listing = src / "imageLists" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing} not found: unzip cocostuff-10k-v1.1.zip into {src}")
        for name in (n.strip() for n in listing.read_text().splitlines()):
            if not name:
                continue
            total += 1
            image_out = dst / "images" / folder / f"{name}.jpg"
            jobs.append(
                Job(
                    f"{name}.jpg",
                    link_or_copy,
                    (src / "images" / f"{name}.jpg", image_out),
                    (image_out,),
                )
            )
            label_out = dst / "annotations" / folder / f"{name}_labelTrainIds.png"
            mat = src / "annotations" / f"{name}.mat"
            jobs.append(Job(f"{name}.mat", _mat_one, (mat, label_out, lookup), (label_out,)))
    _check_size("10k", total)
    return run_jobs("coco_stuff10k", jobs, dst, workers=workers)


def convert_coco_stuff164k(
    src: str | Path, dst: str | Path, *, workers: int = 2
) -> ConversionReport:
    """Convert the 164k release's stuffthingmaps to ``*_labelTrainIds.png``.

    Args:
        src: folder holding ``images/`` and ``annotations/`` (stuffthingmaps).
        dst: the root to write to (``src`` is fine; otherwise the images are linked or copied).
        workers: processes converting files.
    """
    src, dst = Path(src), Path(dst)
    lookup = _lookup(first_id=0, last_id=181)
    jobs = []
    total = 0
    for folder in ("train2017", "val2017"):
        ann_dir = src / "annotations" / folder
        if not ann_dir.is_dir():
            raise FileNotFoundError(
                f"{ann_dir} not found: unzip stuffthingmaps_trainval2017.zip into {src / 'annotations'}"
            )
        for png in sorted(ann_dir.glob("*.png")):
            if "_labelTrainIds" in png.name:
                continue
            total += 1
            stem = png.name.split(".")[0]
            out = dst / "annotations" / folder / f"{stem}_labelTrainIds.png"
            jobs.append(Job(f"{folder}/{png.name}", _png_one, (png, out, lookup), (out,)))
        images = src / "images" / folder
        if dst.resolve() != src.resolve() and images.is_dir():
            for image in sorted(images.iterdir()):
                out = dst / "images" / folder / image.name
                jobs.append(Job(f"{folder}/{image.name}", link_or_copy, (image, out), (out,)))
    _check_size("164k", total)
    return run_jobs("coco_stuff164k", jobs, dst, workers=workers)


def _lookup(first_id: int, last_id: int) -> np.ndarray:
    """uint8 -> uint8 table: used ids ``first_id..last_id`` to consecutive ids from ``first_id``;
    every other value (unused ids, 0 of the 10k release, 255 of the 164k) unchanged."""
    offset = 1 - first_id  # the unused ids are 1-based
    unused = {i - offset for i in _UNUSED_THING_IDS}
    table = np.arange(256, dtype=np.uint8)
    used = [i for i in range(first_id, last_id + 1) if i not in unused]
    table[used] = np.arange(first_id, first_id + len(used))
    return table


def _mat_one(mat: Path, out: Path, lookup: np.ndarray) -> list[Path]:
    from scipy.io import loadmat

    mask = np.asarray(loadmat(mat)["S"]).astype(np.uint8)
    return [write_png(out, lookup[mask])]


def _png_one(png: Path, out: Path, lookup: np.ndarray) -> list[Path]:
    from PIL import Image

    with Image.open(png) as im:
        mask = np.asarray(im)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(
            f"{png}: expected an 8-bit single-channel label map, got {mask.dtype} {mask.shape}"
        )
    return [write_png(out, lookup[mask])]


def _check_size(name: str, total: int) -> None:
    if total != _SIZES[name]:
        log.warning("coco_stuff%s: %d images; the full release has %d", name, total, _SIZES[name])
