"""PASCAL-Context: 60-class label maps (59 classes + background), as MMSegmentation prepares them.

Raw input (``src``), the VOC 2010 devkit plus one of two annotation releases::

    src/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    src/VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt     (used by the .mat route)
    and either
    src/trainval_merged.json     PASCAL in Detail annotations (MMSegmentation's input), or
    src/trainval/<id>.mat        the official 459-class release (trainval.tar.gz): ``LabelMap``
    src/labels.txt               its class list (``<id>: <name>``), checked when present

(each may also lie in ``VOCdevkit/VOC2010/``, or be given with ``annotations=``).

Output (``dst``: the VOC2010 root the data config reads; may be ``src/VOCdevkit/VOC2010``)::

    dst/SegmentationClassContext/<id>.png            8-bit grey, values 0..59
    dst/ImageSets/SegmentationContext/{train,val}.txt    sorted image ids (4,998 / 5,105)
    dst/JPEGImages -> the devkit's (a symbolic link, when dst is not the devkit folder)

Label values: 0 is background (every class outside the 59), 1..59 the 59 classes in the order of
their ids in the 459-class list (aeroplane, bag, bed, ..., wood), as MMSegmentation's mapping. The
59-class datasets ignore 0 (``reduce_zero_label``), the 60-class ones keep it.

Routes, chosen by the files found: ``trainval_merged.json`` with the ``detail`` package importable
(PASCAL in Detail API, not on PyPI) uses ``Detail.getMask`` as MMSegmentation does, in one process;
without it the JSON's run-length encoded masks are decoded here (same order, same overwrite rule),
in parallel. The ``trainval/*.mat`` route maps ``LabelMap`` through the same 59 ids and takes the
splits from VOC 2010's ``ImageSets/Main`` (the images PASCAL-Context annotates); it is not verified
against the JSON route on the real data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from segkit.data.convert.outputs import link_dir, write_list, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs

__all__ = ["CONTEXT_IDS", "convert_pascal_context", "decode_rle"]

log = logging.getLogger("segkit.data.convert")

# The 59 classes' ids in the 459-class list, sorted; output value = position (+ 0: background).
# fmt: off
CONTEXT_IDS = np.array([
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
    115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
    347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458
])
# fmt: on
# A few entries of labels.txt that must hold for the ids above to mean what they should.
_KNOWN_NAMES = {2: "aeroplane", 65: "cat", 284: "person", 458: "wood"}


def convert_pascal_context(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    annotations: str | Path | None = None,
    use_detail: bool = True,
) -> ConversionReport:
    """Write ``SegmentationClassContext/*.png`` and the SegmentationContext split lists.

    Args:
        src: folder holding ``VOCdevkit/VOC2010`` and the annotations.
        dst: the VOC2010 root to write to.
        workers: processes decoding masks (the ``detail`` route runs in one).
        annotations: ``trainval_merged.json`` or the ``trainval`` folder of .mat files, if not
            found under ``src``.
        use_detail: use the ``detail`` package for the JSON when it is importable.
    """
    src, dst = Path(src), Path(dst)
    voc = next((src / c for c in ("VOCdevkit/VOC2010", "VOC2010") if (src / c).is_dir()), src)
    ann = Path(annotations) if annotations else _find_annotations(src, voc)
    out_dir = dst / "SegmentationClassContext"
    if ann.is_file() and ann.suffix == ".json":
        if use_detail and _detail_available():
            jobs, splits = _detail_jobs(ann, voc, out_dir)
            workers = 1  # the Detail index lives in this process
        else:
            jobs, splits = _json_jobs(ann, out_dir)
    elif ann.is_dir():
        jobs, splits = _mat_jobs(ann, voc, out_dir)
    else:
        raise FileNotFoundError(f"{ann}: expected trainval_merged.json or the trainval/ folder")

    report = run_jobs("pascal_context", jobs, dst, workers=workers)
    for split, names in splits.items():
        write_list(dst / "ImageSets" / "SegmentationContext" / f"{split}.txt", sorted(names))
    if (voc / "JPEGImages").is_dir():
        link_dir(voc / "JPEGImages", dst / "JPEGImages")
    return report


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A COCO-style run-length encoded mask (``{"size": [h, w], "counts": str | list}``) as an
    ``(h, w)`` uint8 array of 0/1. Runs alternate 0s and 1s, column by column."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode()
    runs = _runs_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    flat = np.repeat(np.arange(len(runs), dtype=np.uint8) % 2, runs)
    size = height * width
    flat = np.pad(flat, (0, max(0, size - flat.size)))[:size]
    return flat.reshape(width, height).T


def _runs_from_string(s: str) -> list[int]:
    # COCO's compact form: each count is a little-endian base-32 number of 5-bit groups in
    # characters offset by 48 (bit 5 = more groups follow, bit 4 of the last = negative); from
    # the third count on, counts are stored as differences to the count two places back.
    runs: list[int] = []
    pos = 0
    while pos < len(s):
        value, shift, more = 0, 0, True
        while more:
            c = ord(s[pos]) - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _to_context_ids(mask: np.ndarray, name: str) -> np.ndarray:
    """459-class ids (only the 59 and 0 expected) to 0..59."""
    values = np.unique(mask)
    unexpected = np.setdiff1d(values, CONTEXT_IDS)
    if unexpected.size:
        raise ValueError(f"{name}: category ids {unexpected.tolist()} are not PASCAL-Context's 59")
    return np.searchsorted(CONTEXT_IDS, mask).astype(np.uint8)


def _json_jobs(path: Path, out_dir: Path) -> tuple[list[Job], dict[str, list[str]]]:
    log.info("pascal_context: reading %s", path)
    with open(path) as f:
        data = json.load(f)
    segmentations: dict[int, dict] = {}
    for segm in data["annos_segmentation"]:
        segmentations[segm["id"]] = segm
    per_image: dict[int, list[tuple[int, dict]]] = {}
    for segm in segmentations.values():
        per_image.setdefault(segm["image_id"], []).append(
            (segm["category_id"], segm["segmentation"])
        )
    jobs, splits = [], {"train": [], "val": []}
    for img in data["images"]:
        if img["phase"] not in splits:
            continue
        stem = Path(img["file_name"]).stem
        splits[img["phase"]].append(stem)
        out = out_dir / img["file_name"].replace("jpg", "png")
        args = (
            img["file_name"],
            img["height"],
            img["width"],
            per_image.get(img["image_id"], []),
            out,
        )
        jobs.append(Job(img["file_name"], _json_one, args, (out,)))
    return jobs, splits


def _json_one(
    name: str, height: int, width: int, anns: list[tuple[int, dict]], out: Path
) -> list[Path]:
    mask = np.zeros((height, width), np.int64)
    for category_id, rle in anns:  # later annotations overwrite earlier ones, as in Detail
        mask[decode_rle(rle) != 0] = category_id
    return [write_png(out, _to_context_ids(mask, name))]


def _detail_available() -> bool:
    try:
        import detail  # noqa: F401
    except ImportError:
        return False
    return True


def _detail_jobs(path: Path, voc: Path, out_dir: Path) -> tuple[list[Job], dict[str, list[str]]]:
    from detail import Detail

    jobs, splits = [], {}
    for phase in ("train", "val"):
        api = Detail(str(path), str(voc / "JPEGImages"), phase)
        splits[phase] = []
        for img in api.getImgs():
            splits[phase].append(Path(img["file_name"]).stem)
            out = out_dir / img["file_name"].replace("jpg", "png")
            jobs.append(Job(img["file_name"], _detail_one, (api, img, out), (out,)))
    return jobs, splits


def _detail_one(api: Any, img: dict, out: Path) -> list[Path]:
    mask = np.asarray(api.getMask(img)).astype(np.int64)
    return [write_png(out, _to_context_ids(mask, img["file_name"]))]


def _mat_jobs(folder: Path, voc: Path, out_dir: Path) -> tuple[list[Job], dict[str, list[str]]]:
    try:
        import scipy.io  # noqa: F401
    except ImportError as err:
        raise ImportError("reading .mat files needs scipy: pip install scipy") from err
    labels = next(
        (p for p in (folder / "labels.txt", folder.parent / "labels.txt") if p.is_file()), None
    )
    if labels is not None:
        _check_labels(labels)
    mats = {p.stem: p for p in sorted(folder.glob("*.mat"))}
    if not mats:
        raise FileNotFoundError(f"no .mat files in {folder}")
    splits = {}
    for split in ("train", "val"):
        listing = voc / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing} not found: the .mat route takes the splits from it")
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        splits[split] = [i for i in ids if i in mats]
    jobs = []
    for stem in sorted({*splits["train"], *splits["val"]}):
        out = out_dir / f"{stem}.png"
        jobs.append(Job(mats[stem].name, _mat_one, (mats[stem], out), (out,)))
    return jobs, splits


def _mat_one(path: Path, out: Path) -> list[Path]:
    from scipy.io import loadmat

    label_map = np.asarray(loadmat(path)["LabelMap"]).astype(np.int64)
    lookup = np.zeros(max(int(label_map.max(initial=0)), int(CONTEXT_IDS[-1])) + 1, np.uint8)
    lookup[CONTEXT_IDS] = np.arange(len(CONTEXT_IDS))
    return [write_png(out, lookup[label_map])]


def _check_labels(path: Path) -> None:
    names = {}
    for line in path.read_text().splitlines():
        key, _, name = line.partition(":")
        if key.strip().isdigit():
            names[int(key)] = name.strip()
    wrong = {k: names.get(k) for k, v in _KNOWN_NAMES.items() if names.get(k) != v}
    if wrong:
        raise ValueError(f"{path} is not the 459-class PASCAL-Context list (ids {wrong})")


def _find_annotations(src: Path, voc: Path) -> Path:
    for folder in (src, voc):
        if (folder / "trainval_merged.json").is_file():
            return folder / "trainval_merged.json"
        if (folder / "trainval").is_dir():
            return folder / "trainval"
    raise FileNotFoundError(
        f"no PASCAL-Context annotations under {src}: put trainval_merged.json (PASCAL in Detail) or "
        "the trainval/ folder of trainval.tar.gz there, or pass annotations="
    )
