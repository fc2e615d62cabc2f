"""Fake-data generators: tiny trees in the official layouts of real datasets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def _image(path: Path, rng: np.random.Generator, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def _mask(path: Path, mask: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="P" if palette else "L")
    if palette:  # VOC ships palette PNGs: pixel values are class ids, colours are cosmetic
        im.putpalette(np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8).tolist())
    im.save(path)


def make_ade20k(root: Path, n: int = 3, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """ADEChallengeData2016 layout; raw labels 0..150 (0 = other). Returns the raw val masks."""
    rng = np.random.default_rng(1)
    raws = []
    for split in ("training", "validation"):
        for i in range(n):
            stem = f"ADE_{split[:5]}_{i:08d}"
            _image(root / "images" / split / f"{stem}.jpg", rng, size)
            raw = rng.integers(0, 151, size)
            _mask(root / "annotations" / split / f"{stem}.png", raw)
            if split == "validation":
                raws.append(raw)
    return raws


def make_cityscapes(root: Path, n: int = 2, size: tuple[int, int] = (32, 64)) -> list[np.ndarray]:
    """leftImg8bit/ + gtFine/ with *_gtFine_labelTrainIds.png (0..18, 255). Returns val masks."""
    rng = np.random.default_rng(2)
    raws = []
    for split in ("train", "val"):
        for city in ("aachen", "bremen"):
            for i in range(n):
                stem = f"{city}_{i:06d}_000019"
                _image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rng, size)
                raw = rng.integers(0, 19, size)
                raw[:2] = 255
                _mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", raw)
                if split == "val":
                    raws.append(raw)
    return raws


def make_voc(root: Path, n: int = 3, size: tuple[int, int] = (40, 56)) -> list[np.ndarray]:
    """VOC2012 layout: JPEGImages, palette PNGs in SegmentationClass, ImageSets split files."""
    rng = np.random.default_rng(3)
    raws = {}
    for split in ("train", "val"):
        stems = [f"2007_{split}{i:04d}" for i in range(n)]
        (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
        for stem in stems:
            _image(root / "JPEGImages" / f"{stem}.jpg", rng, size)
            raw = rng.integers(0, 21, size)
            raw[:, :2] = 255  # object borders
            _mask(root / "SegmentationClass" / f"{stem}.png", raw, palette=True)
            raws[stem] = raw
    # an image without a label in the split files must not be listed
    _image(root / "JPEGImages" / "2008_unlisted.jpg", rng, size)
    return [raws[f"2007_val{i:04d}"] for i in range(n)]


def make_mapillary(root: Path, n: int = 2, size: tuple[int, int] = (32, 64)) -> list[np.ndarray]:
    """Mapillary Vistas layout (training|validation/images, .../v1.2/labels palette PNGs with the
    66 v1.2 ids, 65 = Unlabeled). Returns the raw val masks."""
    rng = np.random.default_rng(4)
    raws = []
    for split in ("training", "validation"):
        for i in range(n):
            stem = f"mapillary{split[0]}{i:04d}"
            _image(root / split / "images" / f"{stem}.jpg", rng, size)
            raw = rng.integers(0, 66, size)
            _mask(root / split / "v1.2" / "labels" / f"{stem}.png", raw, palette=True)
            if split == "validation":
                raws.append(raw)
    return raws
