"""PASCAL-Context full (PC-459): 16-bit label maps of all 459 classes, from the official release.

The open-vocabulary benchmark "PC-459" (SAN, CAT-Seg, ODISE) evaluates on the 5,105 validation
images of PASCAL-Context with every one of its 459 classes, read from the official annotations.

Raw input (``src``), the VOC 2010 devkit plus the full annotations::

    src/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    src/VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt   the splits (when no SegmentationContext
                                                           list exists, see below)
    src/trainval/<id>.mat     trainval.tar.gz of PASCAL-Context: ``LabelMap`` uint16, 0 unlabelled,
                              1..459 the ids of labels.txt
    src/labels.txt            ``<id>: <name>``, checked when present

(each may also lie in ``VOCdevkit/VOC2010/``, or be given with ``annotations=``).

Output (``dst``: the VOC2010 root; may be ``src/VOCdevkit/VOC2010``)::

    dst/annotations_detectron2/pc459_<split>/<id>.tif   uint16: LabelMap - 1 (0..458), 65535
                                                        where LabelMap is 0 (ignored)
    dst/ImageSets/SegmentationContext/<split>.txt       written when missing
    dst/JPEGImages -> the devkit's (a symbolic link, when dst is not the devkit folder)

The folder and file names are CAT-Seg's (``prepare_pascal_context_459.py``), so a tree prepared by
either tool serves both. The image list of a split is ``ImageSets/SegmentationContext/<split>.txt``
when it exists (written by the ``pascal_context`` converter: PC-59 and PC-459 then evaluate the same
images), else VOC 2010's ``ImageSets/Main/<split>.txt`` restricted to the annotated images (4,998
train / 5,105 val), which is then written there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segkit.data.convert.outputs import link_dir, write_list, write_pil
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.pascal_context import _check_labels

__all__ = ["IGNORE", "NUM_CLASSES", "convert_pascal_context_459", "to_train_ids"]

log = logging.getLogger("segkit.data.convert")

IGNORE = 65535
NUM_CLASSES = 459


def convert_pascal_context_459(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    splits: Sequence[str] = ("val",),
    annotations: str | Path | None = None,
) -> ConversionReport:
    """Write ``annotations_detectron2/pc459_<split>/*.tif`` for ``splits``.

    Args:
        src: folder holding ``VOCdevkit/VOC2010`` (or the VOC2010 folder) and ``trainval/``.
        dst: the VOC2010 root to write (``data.root`` of ``pascal_context_459``).
        workers: processes.
        splits: ``val`` (the benchmark) and/or ``train``.
        annotations: the ``trainval`` folder of .mat files, if not under ``src``.
    """
    src, dst = Path(src), Path(dst)
    unknown = set(splits) - {"train", "val"}
    if unknown:
        raise ValueError(f"splits must be among train, val; got {sorted(unknown)}")
    voc = next((src / c for c in ("VOCdevkit/VOC2010", "VOC2010") if (src / c).is_dir()), src)
    folder = Path(annotations) if annotations else _find_mats(src, voc)
    labels = next((p for p in (folder / "labels.txt", folder.parent / "labels.txt")
                   if p.is_file()), None)  # fmt: skip
    if labels is not None:
        _check_labels(labels)
    mats = {p.stem: p for p in sorted(folder.glob("*.mat"))}
    if not mats:
        raise FileNotFoundError(f"no .mat files in {folder}")
    jobs = []
    for split in splits:
        ids = _split_ids(split, dst, voc, mats)
        for stem in ids:
            out = dst / "annotations_detectron2" / f"pc459_{split}" / f"{stem}.tif"
            jobs.append(Job(mats[stem].name, _convert_one, (mats[stem], out), (out,)))
    report = run_jobs("pascal_context_459", jobs, dst, workers=workers)
    if (voc / "JPEGImages").is_dir():
        link_dir(voc / "JPEGImages", dst / "JPEGImages")
    return report


def to_train_ids(label_map: np.ndarray, source: str = "LabelMap") -> np.ndarray:
    """PASCAL-Context ``LabelMap`` ``(H, W)`` (0 unlabelled, 1..459) -> ``(H, W)`` uint16 training
    ids 0..458, :data:`IGNORE` where unlabelled. Values above 459 are an error."""
    label_map = np.asarray(label_map).astype(np.int64)
    if label_map.size and (label_map.min() < 0 or label_map.max() > NUM_CLASSES):
        bad = np.unique(label_map[(label_map < 0) | (label_map > NUM_CLASSES)])[:10].tolist()
        raise ValueError(f"{source}: values {bad} are not PASCAL-Context ids (0..{NUM_CLASSES})")
    return np.where(label_map == 0, IGNORE, label_map - 1).astype(np.uint16)


def _split_ids(split: str, dst: Path, voc: Path, mats: dict[str, Path]) -> list[str]:
    listing = dst / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    if listing.is_file():
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        missing = [i for i in ids if i not in mats]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} images of {listing} have no .mat annotation, e.g. {missing[0]}"
            )
        return ids
    main = voc / "ImageSets" / "Main" / f"{split}.txt"
    if not main.is_file():
        raise FileNotFoundError(f"neither {listing} nor {main} exists: no {split} image list")
    ids = [i for i in (line.split()[0] for line in main.read_text().splitlines() if line.strip())
           if i in mats]  # fmt: skip
    write_list(listing, sorted(ids))
    log.info("pascal_context_459: wrote %s (%d images)", listing, len(ids))
    return sorted(ids)


def _convert_one(path: Path, out: Path) -> list[Path]:
    from PIL import Image
    from scipy.io import loadmat

    ids = to_train_ids(loadmat(path)["LabelMap"], source=str(path))
    return [write_pil(out, Image.fromarray(ids), "TIFF")]


def _find_mats(src: Path, voc: Path) -> Path:
    for folder in (src, voc):
        if (folder / "trainval").is_dir():
            return folder / "trainval"
    raise FileNotFoundError(
        f"no PASCAL-Context full annotations under {src}: put the trainval/ folder of "
        "trainval.tar.gz (https://www.cs.stanford.edu/~roozbeh/pascal-context/) there, "
        "or pass annotations="
    )
