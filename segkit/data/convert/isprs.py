"""ISPRS Potsdam and Vaihingen: colour labels to class indices, and tiling, as MMSegmentation does.

**Potsdam** raw input (``src``: the folder holding the publisher's zips, read directly)::

    src/2_Ortho_RGB.zip               2_Ortho_RGB/top_potsdam_<i>_<j>_RGB.tif   (6000 x 6000)
    src/5_Labels_all_noBoundary.zip   top_potsdam_<i>_<j>_label_noBoundary.tif  (colour labels)

Output (``dst``)::

    dst/img_dir/{train,val}/<i>_<j>_<x0>_<y0>_<x1>_<y1>.png    RGB tiles
    dst/ann_dir/{train,val}/<i>_<j>_<x0>_<y0>_<x1>_<y1>.png    8-bit grey tiles, values 0..6

24 tiles are train (:data:`POTSDAM_TRAIN`), every other one val: 3,456 train and 2,016 val
patches of 512 x 512 with the defaults.

**Vaihingen** raw input::

    src/ISPRS_semantic_labeling_Vaihingen.zip        top/top_mosaic_09cm_area<k>.tif
    src/ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip
                                                     top_mosaic_09cm_area<k>_noBoundary.tif

Output::

    dst/img_dir/{train,val}/area<k>_<x0>_<y0>_<x1>_<y1>.png    (area9's label is left out)
    dst/ann_dir/{train,val}/area<k>_<x0>_<y0>_<x1>_<y1>.png

16 areas are train (:data:`VAIHINGEN_TRAIN`), the others val.

Label values (both): 1 impervious surfaces (white), 2 building (blue), 3 low vegetation (cyan),
4 tree (green), 5 car (yellow), 6 clutter (red), 0 anything else (black boundary of the eroded
labels): the datasets use ``reduce_zero_label``. Colours are matched like MMSegmentation, by the
key ``2 B + 3 G + 4 R``, so an off-palette colour with a palette colour's key gets its class.

Tiling: MMSegmentation's boxes, ``clip_size`` squares on a grid of step ``clip_size`` (the
``stride_size`` only sets how many are computed; the last row and column are shifted inwards to
end at the border). Coordinates in the names are pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import numpy as np

from segkit.data.convert.outputs import write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import decode_color, list_members, read_member, require

__all__ = [
    "POTSDAM_TRAIN",
    "VAIHINGEN_TRAIN",
    "clip_boxes",
    "colors_to_classes",
    "convert_potsdam",
    "convert_vaihingen",
]

POTSDAM_TRAIN = frozenset(
    [f"{row}_{col}" for row in range(2, 8) for col in (10, 11, 12)]
    + [f"{row}_{col}" for row in (6, 7) for col in (7, 8, 9)]
)
VAIHINGEN_TRAIN = frozenset(
    f"area{k}" for k in (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
)

# Class index: label colour as (B, G, R), the channel order the key is computed in.
_COLORS_BGR = {
    0: (0, 0, 0),
    1: (255, 255, 255),  # impervious surfaces
    2: (255, 0, 0),  # building (RGB blue)
    3: (255, 255, 0),  # low vegetation (RGB cyan)
    4: (0, 255, 0),  # tree
    5: (0, 255, 255),  # car (RGB yellow)
    6: (0, 0, 255),  # clutter (RGB red)
}


def convert_potsdam(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    clip_size: int = 512,
    stride_size: int = 256,
    image_zip: str = "2_Ortho_RGB.zip",
    label_zip: str = "5_Labels_all_noBoundary.zip",
) -> ConversionReport:
    """Tile the Potsdam orthophotos and colour labels into ``img_dir``/``ann_dir``.

    Args:
        src: folder holding the zips.
        dst: dataset root to write to.
        workers: processes (each holds one 6000 x 6000 tile, about 0.5 GB).
        clip_size, stride_size: tile side and MMSegmentation's stride argument, in pixels.
        image_zip, label_zip: the archive names inside ``src``.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for zip_name, is_label in ((image_zip, False), (label_zip, True)):
        archive = require(src / zip_name, f"the ISPRS Potsdam archive {zip_name}")
        for member in list_members(archive):
            path = PurePosixPath(member)
            if path.suffix != ".tif" or len(path.parts) > 2:
                continue
            tile = "_".join(path.name.split("_")[2:4])
            split = "train" if tile in POTSDAM_TRAIN else "val"
            out_dir = dst / ("ann_dir" if is_label else "img_dir") / split
            args = (archive, member, out_dir, tile, is_label, clip_size, stride_size)
            jobs.append(Job(f"{zip_name}/{member}@{clip_size},{stride_size}", _tile_member, args))
    return run_jobs("potsdam", jobs, dst, workers=workers)


def convert_vaihingen(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    clip_size: int = 512,
    stride_size: int = 256,
    image_zip: str = "ISPRS_semantic_labeling_Vaihingen.zip",
    label_zip: str = "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
) -> ConversionReport:
    """Tile the Vaihingen true orthophotos (``top/``) and eroded colour labels.

    Args:
        src: folder holding the zips.
        dst: dataset root to write to.
        workers: processes tiling images.
        clip_size, stride_size: tile side and MMSegmentation's stride argument, in pixels.
        image_zip, label_zip: the archive names inside ``src``.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for zip_name, is_label in ((image_zip, False), (label_zip, True)):
        archive = require(src / zip_name, f"the ISPRS Vaihingen archive {zip_name}")
        for member in list_members(archive):
            path = PurePosixPath(member)
            if path.suffix != ".tif":
                continue
            if is_label and (len(path.parts) > 1 or "area9" in path.name):
                continue  # labels at the top level; area9's is not used
            if not is_label and path.parent.as_posix() != "top":
                continue
            area = path.name.split("_")[3].removesuffix(".tif")
            split = "train" if area in VAIHINGEN_TRAIN else "val"
            out_dir = dst / ("ann_dir" if is_label else "img_dir") / split
            args = (archive, member, out_dir, area, is_label, clip_size, stride_size)
            jobs.append(Job(f"{zip_name}/{member}@{clip_size},{stride_size}", _tile_member, args))
    return run_jobs("vaihingen", jobs, dst, workers=workers)


def clip_boxes(
    height: int, width: int, clip_size: int, stride_size: int
) -> list[tuple[int, int, int, int]]:
    """MMSegmentation's ISPRS tiles of an image, ``(x0, y0, x1, y1)``, duplicates removed."""

    def count(n: int) -> int:
        steps = math.ceil((n - clip_size) / stride_size)
        return steps if steps * stride_size + clip_size >= n else steps + 1

    def span(start: int, n: int) -> tuple[int, int]:
        shift = n - start - clip_size if start + clip_size > n else 0
        return start + shift, min(start + clip_size, n)

    boxes = []
    for row in range(count(height) + 1):
        y0, y1 = span(row * clip_size, height)
        for col in range(count(width) + 1):
            x0, x1 = span(col * clip_size, width)
            boxes.append((x0, y0, x1, y1))
    return list(dict.fromkeys(boxes))


def colors_to_classes(image_bgr: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` BGR colour label as ``(H, W)`` uint8 class indices 0..6."""
    weights = np.array([2, 3, 4], np.int32)
    key = image_bgr.astype(np.int32) @ weights
    lookup = np.zeros(int(weights.sum()) * 255 + 1, np.uint8)
    for index, color in _COLORS_BGR.items():
        lookup[int(np.dot(color, weights))] = index
    return lookup[key]


def _tile_member(
    archive: Path,
    member: str,
    out_dir: Path,
    prefix: str,
    is_label: bool,
    clip_size: int,
    stride_size: int,
) -> list[Path]:
    image = decode_color(read_member(archive, member), member)
    if is_label:
        image = colors_to_classes(image)
    height, width = image.shape[:2]
    written = []
    for x0, y0, x1, y1 in clip_boxes(height, width, clip_size, stride_size):
        # Python slicing as MMSegmentation's: a negative start (image smaller than a tile)
        # counts from the end.
        name = f"{prefix}_{x0}_{y0}_{x1}_{y1}.png"
        written.append(write_png(out_dir / name, image[y0:y1, x0:x1]))
    return written
