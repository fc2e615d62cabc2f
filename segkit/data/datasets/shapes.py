"""``data=shapes``: the embedded dataset, procedurally generated, no download.

Scenes of textured shapes on textured backgrounds. Each shape class draws its colours from an
80-degree hue range that overlaps both neighbouring classes' ranges; the background takes any hue
at lower saturation, overlapping the shapes' paler colours; every class uses the same four
textures (solid, stripes, checker, smooth noise). Colour narrows a pixel down to a few classes;
shape and context decide (a ring is a disc with a hole showing the background; a cross and a
square share straight edges). Generated once into a cache folder in the same
layout as a real dataset (``images/{train,val}/*.png``, ``annotations/{train,val}/*.png``) and
read back with :class:`~segkit.data.datasets.SegmentationFolder`.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segkit.data.datasets.folder import SegmentationFolder
from segkit.data.labels import LabelSpec

__all__ = ["SHAPES_CLASSES", "SHAPES_PALETTE", "Shapes", "ensure_shapes", "render_scene"]

log = logging.getLogger(__name__)

SHAPES_CLASSES = ["background", "disc", "square", "triangle", "ring", "cross", "star"]
SHAPES_PALETTE = [
    [0, 0, 0],
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
]
_VERSION = 4


def _colour(rng: np.random.Generator, hue: float | None) -> np.ndarray:
    """An RGB colour (0-255). Background (``hue=None``): any hue, saturation 0-0.6. A shape: hue
    within 40 degrees of ``hue``, saturation 0.35-1. Class hues are 60 degrees apart, so each
    class's range overlaps both neighbours', and every saturation in 0.35-0.6 is shared with the
    background."""
    if hue is None:
        return (
            np.array(
                colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.3, 1))
            )
            * 255
        )
    h = (hue + rng.uniform(-1, 1) / 9) % 1.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.35, 1), rng.uniform(0.35, 1))) * 255


def _texture(rng: np.random.Generator, size: int, hue: float | None = None) -> np.ndarray:
    """A ``(size, size, 3)`` float texture: solid, stripes, checker or smooth noise, in colours
    from :func:`_colour`: colour narrows a class down but does not decide it."""
    c1, c2 = _colour(rng, hue), _colour(rng, hue)
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:
        t = np.zeros((size, size), np.float32)
    elif kind == 1:
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 14)
        t = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) > 0
        t = t.astype(np.float32)
    elif kind == 2:
        period = int(rng.integers(4, 12))
        t = (((xx // period) + (yy // period)) % 2).astype(np.float32)
    else:
        small = rng.uniform(0, 1, (size // 16 + 2, size // 16 + 2)).astype(np.float32)
        t = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """A boolean mask of one shape of class ``cls`` at a random place, scale and rotation."""
    mask = np.zeros((size, size), np.uint8)
    r = rng.uniform(0.13, 0.26) * size
    cx, cy = rng.uniform(r, size - r, 2)
    theta = rng.uniform(0, 2 * math.pi)

    def poly(points: np.ndarray) -> None:
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pts = points @ rot.T * r + (cx, cy)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)

    name = SHAPES_CLASSES[cls]
    if name == "disc":
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
    elif name == "ring":
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
        cv2.circle(mask, (round(cx), round(cy)), round(r * rng.uniform(0.45, 0.65)), 0, -1)
    elif name == "square":
        poly(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.85)
    elif name == "triangle":
        a = np.array([math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3])
        poly(np.stack([np.cos(a), np.sin(a)], 1) * 1.1)
    elif name == "cross":
        w = 0.33
        poly(
            np.array(
                [
                    [-w, -1],
                    [w, -1],
                    [w, -w],
                    [1, -w],
                    [1, w],
                    [w, w],
                    [w, 1],
                    [-w, 1],
                    [-w, w],
                    [-1, w],
                    [-1, -w],
                    [-w, -w],
                ]
            )
        )
    elif name == "star":
        a = np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.1, 0.45)
        poly(np.stack([np.cos(a) * radius, np.sin(a) * radius], 1))
    return mask.astype(bool)


def render_scene(seed: int, size: int = 128, max_objects: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(size, size, 3)`` uint8 RGB image and ``(size, size)`` uint8 class ids."""
    rng = np.random.default_rng(seed)
    image = _texture(rng, size)
    label = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(1, len(SHAPES_CLASSES)))
        mask = _shape_mask(rng, cls, size)
        image[mask] = _texture(rng, size, hue=(cls - 1) / (len(SHAPES_CLASSES) - 1))[mask]
        label[mask] = cls
    image += rng.normal(0, 4, image.shape)
    return image.clip(0, 255).astype(np.uint8), label


def ensure_shapes(
    root: str | Path,
    num_train: int = 1000,
    num_val: int = 100,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Generate the dataset under ``root`` unless an identical one is there; returns its folder.

    The folder name encodes the parameters, and a finished dataset is moved into place in one
    rename, so concurrent processes never see a half-written one.
    """
    params = {"version": _VERSION, "train": num_train, "val": num_val, "size": size, "seed": seed}
    name = f"shapes-v{_VERSION}-{num_train}-{num_val}-{size}-{seed}"

    def write(tmp: Path, split: str, count: int, first_seed: int) -> None:
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "annotations" / split).mkdir(parents=True)
        for i in range(count):
            image, label = render_scene(first_seed + i, size)
            cv2.imwrite(str(tmp / "images" / split / f"{i:05d}.png"), image[..., ::-1])
            cv2.imwrite(str(tmp / "annotations" / split / f"{i:05d}.png"), label)

    meta = {**params, "classes": SHAPES_CLASSES}
    return generate_once(Path(root).expanduser() / name, meta, write, num_train, num_val, seed)


def generate_once(
    target: Path,
    meta: dict[str, Any],
    write_split: Callable[[Path, str, int, int], None],
    num_train: int,
    num_val: int,
    seed: int,
) -> Path:
    """Write a generated dataset into ``target`` unless it is already there; returns ``target``.

    ``write_split(folder, split, count, first_seed)`` writes one split's files under a temporary
    folder; sample ``i`` uses the seed ``first_seed + i`` (train and val never share one). The
    finished folder, with ``meta.json``, is moved into place in one rename, so concurrent
    processes never see a half-written dataset.
    """
    if (target / "meta.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    log.info("generating %s", target)
    try:
        for split, count, offset in (("train", num_train, 0), ("val", num_val, 10_000_000)):
            write_split(tmp, split, count, seed * 100_000_000 + offset)
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not (target / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class Shapes(SegmentationFolder):
    """The generated shapes dataset (``split`` = ``"train"`` or ``"val"``); generates it under
    ``root`` on first use. Other arguments as :class:`SegmentationFolder`."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        labels: LabelSpec,
        num_train: int = 1000,
        num_val: int = 100,
        size: int = 128,
        seed: int = 0,
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        strict: bool = True,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"shapes has splits 'train' and 'val', not {split!r}")
        folder = ensure_shapes(root, num_train, num_val, size, seed)
        super().__init__(
            folder,
            img_dir=f"images/{split}",
            ann_dir=f"annotations/{split}",
            labels=labels,
            img_suffix=".png",
            ann_suffix=".png",
            transform=transform,
            keep_original_mask=keep_original_mask,
            strict=strict,
        )
