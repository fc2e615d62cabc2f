"""Cityscapes: polygon annotations to training-id label maps, as MMSegmentation prepares them.

Raw input (``src``: ``gtFine_trainvaltest.zip`` and ``leftImg8bit_trainvaltest.zip`` unzipped)::

    src/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_polygons.json
    src/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png

Output (``dst``, which may be ``src``: the label maps then lie beside the JSON files)::

    dst/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (8-bit grey)
    dst/{train,val,test}.txt       one ``<city>/<city>_<seq>_<frame>`` per line, sorted
    dst/leftImg8bit -> src/leftImg8bit   (a symbolic link, only when dst is not src)

Label values: training ids 0..18 for the 19 evaluated classes, 255 for everything else (void,
unevaluated classes, unlabelled pixels). The rasterisation is pixel-identical to cityscapesscripts'
``json2labelImg(json, png, "trainIds")``: polygons drawn with PIL in file order onto a 255
background; deleted objects skipped; an unknown ``<name>group`` label drawn as ``<name>``
(``cargroup`` as car; ``polegroup`` is a label of its own); labels with a negative id (license
plate) not drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segkit.data.convert.outputs import link_dir, write_list, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs

__all__ = ["LABELS", "convert_cityscapes", "polygons_to_train_ids"]

# name: (id, train id), the official Cityscapes label definitions.
LABELS: dict[str, tuple[int, int]] = {
    "unlabeled": (0, 255),
    "ego vehicle": (1, 255),
    "rectification border": (2, 255),
    "out of roi": (3, 255),
    "static": (4, 255),
    "dynamic": (5, 255),
    "ground": (6, 255),
    "road": (7, 0),
    "sidewalk": (8, 1),
    "parking": (9, 255),
    "rail track": (10, 255),
    "building": (11, 2),
    "wall": (12, 3),
    "fence": (13, 4),
    "guard rail": (14, 255),
    "bridge": (15, 255),
    "tunnel": (16, 255),
    "pole": (17, 5),
    "polegroup": (18, 255),
    "traffic light": (19, 6),
    "traffic sign": (20, 7),
    "vegetation": (21, 8),
    "terrain": (22, 9),
    "sky": (23, 10),
    "person": (24, 11),
    "rider": (25, 12),
    "car": (26, 13),
    "truck": (27, 14),
    "bus": (28, 15),
    "caravan": (29, 255),
    "trailer": (30, 255),
    "train": (31, 16),
    "motorcycle": (32, 17),
    "bicycle": (33, 18),
    "license plate": (-1, -1),
}

SPLITS = ("train", "val", "test")


def convert_cityscapes(
    src: str | Path, dst: str | Path, *, workers: int = 2, gt_dir: str = "gtFine"
) -> ConversionReport:
    """Rasterise every ``*_polygons.json`` under ``src/<gt_dir>`` and write the split lists.

    Args:
        src: the Cityscapes root holding ``gtFine/`` (and ``leftImg8bit/``).
        dst: the root to write to (``src`` itself is fine).
        workers: processes drawing label maps.
        gt_dir: the annotation folder (``gtFine``; ``gtCoarse`` works alike).
    """
    src, dst = Path(src), Path(dst)
    gt = src / gt_dir
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt} not found: unzip gtFine_trainvaltest.zip into {src}")
    jsons = sorted(gt.rglob("*_polygons.json"))
    if not jsons:
        raise FileNotFoundError(f"no *_polygons.json files under {gt}")

    jobs = []
    for path in jsons:
        rel = path.relative_to(src)
        out = dst / rel.with_name(rel.name.replace("_polygons.json", "_labelTrainIds.png"))
        jobs.append(Job(rel.as_posix(), _convert_one, (path, out), (out,)))
    report = run_jobs("cityscapes", jobs, dst, workers=workers)

    for split in SPLITS:
        folder = gt / split
        if folder.is_dir():
            suffix = f"_{gt_dir}_polygons.json"
            names = sorted(
                p.relative_to(folder).as_posix().removesuffix(suffix)
                for p in folder.rglob("*_polygons.json")
            )
            write_list(dst / f"{split}.txt", names)
    if (src / "leftImg8bit").is_dir():
        link_dir(src / "leftImg8bit", dst / "leftImg8bit")
    return report


def polygons_to_train_ids(annotation: dict):
    """A Cityscapes polygon annotation (the parsed JSON) as an ``L``-mode PIL image of training
    ids, ``imgHeight x imgWidth``."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (int(annotation["imgWidth"]), int(annotation["imgHeight"])), 255)
    draw = ImageDraw.Draw(image)
    for obj in annotation["objects"]:
        if obj.get("deleted"):
            continue
        name = str(obj["label"])
        if name not in LABELS and name.endswith("group"):
            name = name.removesuffix("group")
        if name not in LABELS:
            raise ValueError(f"unknown Cityscapes label {obj['label']!r}")
        label_id, train_id = LABELS[name]
        if label_id < 0:
            continue
        draw.polygon([(p[0], p[1]) for p in obj["polygon"]], fill=train_id)
    return image


def _convert_one(json_path: Path, out: Path) -> list[Path]:
    with open(json_path) as f:
        annotation = json.load(f)
    try:
        image = polygons_to_train_ids(annotation)
    except ValueError as err:
        raise ValueError(f"{json_path}: {err}") from None
    return [write_png(out, np.asarray(image))]
