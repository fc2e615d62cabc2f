"""``data=shapes_depth``: an embedded depth dataset, procedurally generated, no download.

Each scene is ray-cast exactly through a pinhole camera (focal length ``f = size`` pixels, so a
53-degree field of view; optical axis horizontal, principal point at the image centre column and
at a random row, the horizon) held ``h`` metres above a ground plane: a textured ground receding
to the horizon (z-depth ``f * h / (y - y_horizon)`` at row ``y``), a fronto-parallel back wall at
a random distance, and one to three flat cut-outs of the :mod:`shapes` classes (disc, square,
triangle, ring, cross, star) standing on the ground at random distances, either facing the
camera (constant depth) or turned about the vertical axis (planar depth). The nearest surface
wins at every pixel (occlusion). Textures are drawn from the shapes dataset's shared pool and
pinned to the surfaces in metres, so they shrink with distance like the objects do: depth has to
be read from geometry (position relative to the horizon, apparent size, texture gradient,
occlusion), not from colour.

Depth is the z-depth in metres of the pixel centre's ray, exact up to the millimetre
quantisation of the stored 16-bit PNGs, within about 0.7-10 m; labels are the surface's class.
Generated once into a cache folder in the layout of a real dataset (``images/{split}/*.png``,
``annotations/{split}/*.png`` 8-bit class ids, ``depth/{split}/*.png`` 16-bit millimetres) and
read back with :class:`~segkit.data.datasets.SegmentationFolder`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segkit.data.datasets.folder import SegmentationFolder
from segkit.data.datasets.shapes import SHAPES_CLASSES, SHAPES_PALETTE, _texture, generate_once
from segkit.data.labels import LabelSpec

__all__ = [
    "SHAPES_DEPTH_CLASSES",
    "SHAPES_DEPTH_PALETTE",
    "ShapesDepth",
    "ensure_shapes_depth",
    "render_depth_scene",
]

log = logging.getLogger(__name__)

OBJECTS = SHAPES_CLASSES[1:]  # disc, square, triangle, ring, cross, star
SHAPES_DEPTH_CLASSES = ["ground", "wall", *OBJECTS]
SHAPES_DEPTH_PALETTE = [[128, 64, 128], [70, 70, 70], *SHAPES_PALETTE[1:]]
MAX_DEPTH = 10.0  # metres: the farthest back wall
_VERSION = 1
_TEX = 128  # texels per texture tile side
_SHAPE_RES = 256  # raster of a cut-out's outline, over [-1.25, 1.25]^2 in units of its radius
_W = 0.33  # half-width of a cross's arms
_T = math.pi / 2 + np.arange(3) * 2 * math.pi / 3  # triangle corners
_A = np.arange(10) * math.pi / 5  # star corners, alternately outer and inner
_POLYGONS = {  # unit outlines of the shapes dataset (radius 1, rows pointing down)
    "square": np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.85,
    "triangle": 1.1 * np.stack([np.cos(_T), np.sin(_T)], 1),
    "cross": np.array(
        [
            [-_W, -1],
            [_W, -1],
            [_W, -_W],
            [1, -_W],
            [1, _W],
            [_W, _W],
            [_W, 1],
            [-_W, 1],
            [-_W, _W],
            [-1, _W],
            [-1, -_W],
            [-_W, -_W],
        ]
    ),
    "star": np.stack([np.cos(_A), np.sin(_A)], 1) * np.where(np.arange(10) % 2, 0.45, 1.1)[:, None],
}


def _outline(rng: np.random.Generator, name: str) -> np.ndarray:
    """A cut-out's shape as a ``(_SHAPE_RES, _SHAPE_RES)`` bool raster over ``[-1.25, 1.25]^2``
    (units of the cut-out's radius, rows pointing down), the shapes dataset's geometry."""
    res, half = _SHAPE_RES, 1.25
    scale = res / (2 * half)
    canvas = np.zeros((res, res), np.uint8)
    centre = (res / 2, res / 2)
    if name in ("disc", "ring"):
        cv2.circle(canvas, (res // 2, res // 2), round(scale), 1, -1)
        if name == "ring":
            cv2.circle(canvas, (res // 2, res // 2), round(scale * rng.uniform(0.45, 0.65)), 0, -1)
    else:
        points = _POLYGONS[name] * scale + centre
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    return canvas.astype(bool)


def _lookup(texture: np.ndarray, a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    """Colours of a tiled ``texture`` at surface coordinates ``a`` (across) and ``b`` (down) in
    metres; one tile spans ``period`` metres."""
    n = texture.shape[0]
    col = np.floor(a / period * n).astype(np.int64) % n
    row = np.floor(b / period * n).astype(np.int64) % n
    return texture[row, col]


def render_depth_scene(
    seed: int, size: int = 128, max_objects: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``(size, size, 3)`` uint8 RGB image, ``(size, size)`` uint8 class ids
    (:data:`SHAPES_DEPTH_CLASSES`) and ``(size, size)`` float64 z-depth in metres."""
    rng = np.random.default_rng(seed)
    f = float(size)  # focal length in pixels
    cam_height = rng.uniform(0.5, 1.5)  # metres above the ground
    horizon = rng.uniform(0.3, 0.5) * size  # principal point row
    wall = rng.uniform(6.0, 10.0)  # distance of the back wall
    centres = np.arange(size) + 0.5
    # ray of each pixel centre with unit z: a point on it at z-depth t is t * (dx, dy, 1)
    dx = np.broadcast_to((centres - size / 2) / f, (size, size))
    dy = np.broadcast_to(((centres - horizon) / f)[:, None], (size, size))

    depth = np.full((size, size), wall)
    label = np.full((size, size), 1, np.uint8)
    image = _lookup(_texture(rng, _TEX), wall * dx, wall * dy, period=3.0)

    with np.errstate(divide="ignore"):
        t = np.where(dy > 0, cam_height / dy, np.inf)  # the ground plane y = cam_height
    near = t < depth
    seen = np.where(near, t, 0.0)  # no texture lookups at infinity (above the horizon)
    ground = _lookup(_texture(rng, _TEX), seen * dx, seen, period=3.0)
    depth[near], label[near], image[near] = t[near], 0, ground[near]

    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(2, len(SHAPES_DEPTH_CLASSES)))
        name = SHAPES_DEPTH_CLASSES[cls]
        radius = rng.uniform(0.3, 0.7)
        z = rng.uniform(1.2, wall - 1.0)
        x = (rng.uniform(0.1, 0.9) * size - size / 2) * z / f
        centre = np.array([x, cam_height - radius, z])  # standing on the ground
        yaw = rng.uniform(-math.pi / 4, math.pi / 4) if rng.random() < 0.5 else 0.0
        normal = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
        across = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])  # the cut-out's own x axis
        t = (normal @ centre) / (normal[0] * dx + normal[2])  # ray-plane intersection
        offset = np.stack([t * dx, t * dy, t], -1) - centre
        u, v = offset @ across / radius, offset[..., 1] / radius
        theta = rng.uniform(0, 2 * math.pi)  # rotation of the shape within its plane
        ur = u * math.cos(theta) + v * math.sin(theta)
        vr = -u * math.sin(theta) + v * math.cos(theta)
        outline = _outline(rng, name)
        col = np.floor((ur + 1.25) / 2.5 * _SHAPE_RES).astype(np.int64)
        row = np.floor((vr + 1.25) / 2.5 * _SHAPE_RES).astype(np.int64)
        inside = (col >= 0) & (col < _SHAPE_RES) & (row >= 0) & (row < _SHAPE_RES)
        inside[inside] = outline[row[inside], col[inside]]
        hue = (cls - 2) / len(OBJECTS)  # the shapes dataset's class hues
        colours = _lookup(_texture(rng, _TEX, hue=hue), u * radius, v * radius, period=1.5)
        near = inside & (t < depth)
        depth[near], label[near], image[near] = t[near], cls, colours[near]

    image = image + rng.normal(0, 4, image.shape)
    return image.clip(0, 255).astype(np.uint8), label, depth


def ensure_shapes_depth(
    root: str | Path,
    num_train: int = 1000,
    num_val: int = 100,
    size: int = 128,
    seed: int = 0,
    depth_scale: float = 1000.0,
) -> Path:
    """Generate the dataset under ``root`` unless an identical one is there; returns its folder.
    Depth is stored as ``round(metres * depth_scale)`` in 16-bit PNGs (1000: millimetres).

    The folder name encodes the parameters, and a finished dataset is moved into place in one
    rename, so concurrent processes never see a half-written one.
    """
    if not 0 < depth_scale * MAX_DEPTH < 2**16:
        raise ValueError(f"depth_scale {depth_scale} does not fit {MAX_DEPTH} m in 16 bits")
    params = {
        "version": _VERSION,
        "train": num_train,
        "val": num_val,
        "size": size,
        "seed": seed,
        "depth_scale": depth_scale,
    }
    name = f"shapes_depth-v{_VERSION}-{num_train}-{num_val}-{size}-{seed}-{depth_scale:g}"

    def write(tmp: Path, split: str, count: int, first_seed: int) -> None:
        folders = {k: tmp / k / split for k in ("images", "annotations", "depth")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        for i in range(count):
            image, label, depth = render_depth_scene(first_seed + i, size)
            stored = np.round(depth * depth_scale).astype(np.uint16)
            cv2.imwrite(str(folders["images"] / f"{i:05d}.png"), image[..., ::-1])
            cv2.imwrite(str(folders["annotations"] / f"{i:05d}.png"), label)
            cv2.imwrite(str(folders["depth"] / f"{i:05d}.png"), stored)

    meta = {**params, "classes": SHAPES_DEPTH_CLASSES, "focal_px": float(size)}
    return generate_once(Path(root).expanduser() / name, meta, write, num_train, num_val, seed)


class ShapesDepth(SegmentationFolder):
    """The generated depth dataset (``split`` = ``"train"`` or ``"val"``); generates it under
    ``root`` on first use. Samples carry ``image``, ``mask`` (class ids) and ``depth`` (``(H, W)``
    float32 metres); ``with_labels=False`` drops the masks (depth only). ``depth_scale``: stored
    integers per metre (written and read back). Other arguments as :class:`SegmentationFolder`."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        labels: LabelSpec,
        num_train: int = 1000,
        num_val: int = 100,
        size: int = 128,
        seed: int = 0,
        depth_scale: float = 1000.0,
        with_labels: bool = True,
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        strict: bool = True,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"shapes_depth has splits 'train' and 'val', not {split!r}")
        folder = ensure_shapes_depth(root, num_train, num_val, size, seed, depth_scale)
        super().__init__(
            folder,
            img_dir=f"images/{split}",
            ann_dir=f"annotations/{split}" if with_labels else None,
            labels=labels,
            img_suffix=".png",
            ann_suffix=".png",
            depth_dir=f"depth/{split}",
            depth_suffix=".png",
            depth_scale=depth_scale,
            transform=transform,
            keep_original_mask=keep_original_mask,
            strict=strict,
        )
