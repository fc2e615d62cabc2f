"""iSAID: colour semantic masks to class indices, and sliding-window patches, as MMSegmentation.

Raw input (``src``: the publisher's zips, read directly; DOTA-v1.0 images + iSAID masks)::

    src/{train,val,test}/images/*.zip         images/P<nnnn>.png
    src/{train,val}/Semantic_masks/*.zip      images/P<nnnn>_instance_color_RGB.png

Output (``dst``)::

    dst/img_dir/{train,val}/P<nnnn>_<y0>_<y1>_<x0>_<x1>.png                      RGB patches
    dst/ann_dir/{train,val}/P<nnnn>_<y0>_<y1>_<x0>_<x1>_instance_color_RGB.png   8-bit grey
    dst/img_dir/test/P<nnnn>.png                                                  whole images

Patches: ``patch_size`` squares every ``patch_size - overlap`` pixels (896 and 384 by default),
the last ones shifted inwards to end at the border; an image smaller than a patch is padded at
the bottom/right first (images with 0, labels with 255). Coordinates in the names are pixels,
ends exclusive. MMSegmentation writes the image patches as BMP data under a ``.png`` name; here
they are PNG (decoders read either by content).

Label values: 0 background (and any colour outside the palette), 1..15 the 15 iSAID classes
(ship, storage tank, baseball diamond, tennis court, basketball court, ground track field,
bridge, large vehicle, small vehicle, helicopter, swimming pool, roundabout, soccer ball field,
plane, harbor), 255 padding.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from segkit.data.convert.outputs import write_bytes, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import decode_color, find_archives, list_members, read_member

__all__ = ["ISAID_PALETTE", "convert_isaid", "patch_windows"]

# Class index: mask colour (R, G, B).
ISAID_PALETTE = {
    0: (0, 0, 0),
    1: (0, 0, 63),
    2: (0, 63, 63),
    3: (0, 63, 0),
    4: (0, 63, 127),
    5: (0, 63, 191),
    6: (0, 63, 255),
    7: (0, 127, 63),
    8: (0, 127, 127),
    9: (0, 0, 127),
    10: (0, 0, 191),
    11: (0, 0, 255),
    12: (0, 191, 127),
    13: (0, 127, 191),
    14: (0, 127, 255),
    15: (0, 100, 155),
}


def convert_isaid(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    patch_size: int = 896,
    overlap: int = 384,
) -> ConversionReport:
    """Cut the train/val images and masks into patches; copy the test images whole.

    Args:
        src: folder holding ``train/``, ``val/``, ``test/`` with the zips.
        dst: dataset root to write to.
        workers: processes cutting images.
        patch_size: patch side in pixels.
        overlap: overlap of neighbouring patches in pixels.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for split in ("train", "val", "test"):
        image_zips = find_archives(src / split / "images")
        if not image_zips:
            raise FileNotFoundError(
                f"no zips in {src / split / 'images'}: expected iSAID's {split} images"
            )
        kinds = [(z, "image") for z in image_zips]
        if split != "test":
            kinds += [(z, "label") for z in find_archives(src / split / "Semantic_masks")]
        for archive, kind in kinds:
            for member in list_members(archive):
                path = PurePosixPath(member)
                if path.suffix != ".png" or path.parent.name != "images":
                    continue
                key = f"{split}/{archive.name}/{member}"
                if split == "test":
                    out = dst / "img_dir" / "test" / path.name
                    jobs.append(Job(key, _copy_member, (archive, member, out), (out,)))
                else:
                    out_dir = dst / ("ann_dir" if kind == "label" else "img_dir") / split
                    args = (archive, member, out_dir, kind == "label", patch_size, overlap)
                    jobs.append(Job(f"{key}@{patch_size},{overlap}", _cut_member, args))
    return run_jobs("isaid", jobs, dst, workers=workers)


def patch_windows(
    height: int, width: int, patch_size: int, overlap: int
) -> list[tuple[int, int, int, int]]:
    """MMSegmentation's iSAID windows ``(y0, y1, x0, x1)`` over an (already padded) image,
    duplicates removed."""
    step = patch_size - overlap
    windows = []
    for x in range(0, width, step):
        x0, x1 = x, x + patch_size
        if x1 > width:
            x0, x1 = x0 - (x1 - width), width
        for y in range(0, height, step):
            y0, y1 = y, y + patch_size
            if y1 > height:
                y0, y1 = y0 - (y1 - height), height
            windows.append((y0, y1, x0, x1))
    return list(dict.fromkeys(windows))


def _pad(array: np.ndarray, patch_size: int, value: int) -> np.ndarray:
    """Pad bottom/right to ``patch_size`` on each side shorter than it; as MMSegmentation, only
    when the other side is not exactly ``patch_size`` long."""
    height, width = array.shape[:2]
    if height < patch_size and width > patch_size:
        target = (patch_size, width)
    elif height > patch_size and width < patch_size:
        target = (height, patch_size)
    elif height < patch_size and width < patch_size:
        target = (patch_size, patch_size)
    else:
        return array
    pad = [(0, target[0] - height), (0, target[1] - width)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, constant_values=value)


def _colors_to_classes(rgb: np.ndarray) -> np.ndarray:
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.zeros(rgb.shape[:2], np.uint8)
    for index, (r, g, b) in ISAID_PALETTE.items():
        out[key == (r << 16 | g << 8 | b)] = index
    return out


def _cut_member(
    archive: Path, member: str, out_dir: Path, is_label: bool, patch_size: int, overlap: int
) -> list[Path]:
    data = read_member(archive, member)
    stem = PurePosixPath(member).name.split(".")[0]
    if is_label:  # decoded by OpenCV, images by PIL, as in MMSegmentation
        rgb = decode_color(data, member)[..., ::-1]
        array = _pad(_colors_to_classes(rgb), patch_size, 255)
        stem, suffix = stem.split("_")[0], "_instance_color_RGB.png"
    else:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGB"))
        array = _pad(rgb[..., ::-1], patch_size, 0)  # BGR for write_png
        suffix = ".png"
    height, width = array.shape[:2]
    written = []
    for y0, y1, x0, x1 in patch_windows(height, width, patch_size, overlap):
        name = f"{stem}_{y0}_{y1}_{x0}_{x1}{suffix}"
        written.append(write_png(out_dir / name, array[y0:y1, x0:x1]))
    return written


def _copy_member(archive: Path, member: str, out: Path) -> Path:
    return write_bytes(out, read_member(archive, member))
