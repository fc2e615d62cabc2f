"""Throughput of the annotation converters on synthetic raw data, with 1 and 2 workers.

    /work/venv/bin/python benchmarks/converters.py [--cityscapes 200] [--potsdam-size 6000]
        [--coco 200] [--workers 1 2] [--keep DIR]

Builds, in a temporary folder, raw data in the publishers' formats:

- ``cityscapes``: ``--cityscapes`` polygon JSONs at 2048 x 1024, ~120 polygons of 8-60 vertices
  each (about the density of gtFine);
- ``potsdam``: one ``--potsdam-size`` square RGB tile and its colour label, zipped as
  ``2_Ortho_RGB.zip`` / ``5_Labels_all_noBoundary.zip`` (6000 is the real size: 144 patches each);
- ``coco_stuff164k``: ``--coco`` stuffthingmaps PNGs at ADE/COCO size (640 x 480);

then converts each with every ``--workers`` count into a fresh folder and prints a markdown table
of output files per second (wall clock, including process start-up). Defaults take about two
minutes on 2 cores; ``--cityscapes 20 --potsdam-size 1500 --coco 20`` is a smoke run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from segkit.data.convert.cityscapes import LABELS, convert_cityscapes
from segkit.data.convert.coco_stuff import convert_coco_stuff164k
from segkit.data.convert.isprs import convert_potsdam


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cityscapes", type=int, default=200, help="polygon JSON files")
    parser.add_argument(
        "--potsdam-size", type=int, default=6000, help="side of the Potsdam tile (pixels)"
    )
    parser.add_argument("--coco", type=int, default=200, help="COCO-Stuff label maps")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, help="build the raw data here and keep it")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="segkit-convert-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        cases: list[tuple[str, int, Callable, Path, dict]] = []
        t = time.perf_counter()
        if args.cityscapes:
            make_cityscapes(root / "cityscapes", args.cityscapes)
            cases.append(
                ("cityscapes", args.cityscapes, convert_cityscapes, root / "cityscapes", {})
            )
        if args.potsdam_size:
            make_potsdam(root / "potsdam", args.potsdam_size)
            cases.append(("potsdam", 2, convert_potsdam, root / "potsdam", {}))
        if args.coco:
            make_coco_stuff164k(root / "coco", args.coco)
            cases.append(("coco_stuff164k", args.coco, convert_coco_stuff164k, root / "coco", {}))
        print(f"raw data built in {time.perf_counter() - t:.1f} s under {root}\n", file=sys.stderr)

        rows = []
        for name, inputs, fn, src, options in cases:
            for workers in args.workers:
                dst = root / f"out-{name}-{workers}"
                shutil.rmtree(dst, ignore_errors=True)
                report = fn(src=src, dst=dst, workers=workers, **options)
                rows.append(
                    (name, inputs, workers, report.written, report.seconds, report.files_per_second)
                )
                shutil.rmtree(dst, ignore_errors=True)
        print(f"cores: {os.cpu_count()}\n")
        print("| converter | raw inputs | workers | files written | seconds | files/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, inputs, workers, written, seconds, rate in rows:
            print(f"| {name} | {inputs} | {workers} | {written} | {seconds:.2f} | {rate:.1f} |")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def make_cityscapes(root: Path, count: int, polygons: int = 120) -> None:
    """``count`` gtFine-like polygon JSONs (2048 x 1024) under ``gtFine/train/<city>/``."""
    import json

    rng = np.random.default_rng(0)
    names = [n for n, (label_id, _) in LABELS.items() if label_id >= 0] + [
        "cargroup",
        "persongroup",
    ]
    folder = root / "gtFine" / "train" / "benchcity"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        objects = []
        for _ in range(polygons):
            n = int(rng.integers(8, 61))
            cx, cy = rng.uniform(0, 2048), rng.uniform(0, 1024)
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radius = rng.uniform(5, 300, n)
            points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
            objects.append(
                {"label": str(rng.choice(names)), "polygon": np.round(points).astype(int).tolist()}
            )
        annotation = {"imgHeight": 1024, "imgWidth": 2048, "objects": objects}
        (folder / f"benchcity_{i:06d}_000019_gtFine_polygons.json").write_text(
            json.dumps(annotation)
        )


def make_potsdam(root: Path, size: int) -> None:
    """One Potsdam-like tile (``size`` square) and its colour label, zipped as published."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    # Blocky content: realistic compressed sizes, cheap to make.
    cells = -(-size // 50)
    image = np.kron(
        rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), np.ones((50, 50, 1), np.uint8)
    )
    palette = np.array(
        [[255, 255, 255], [255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255], [0, 0, 255]],
        np.uint8,
    )
    label = palette[np.kron(rng.integers(0, 6, (cells, cells)), np.ones((50, 50), np.int64))]
    for zip_name, member, array in (
        ("2_Ortho_RGB.zip", "2_Ortho_RGB/top_potsdam_2_10_RGB.tif", image[:size, :size]),
        (
            "5_Labels_all_noBoundary.zip",
            "top_potsdam_2_10_label_noBoundary.tif",
            label[:size, :size],
        ),
    ):
        ok, data = cv2.imencode(".tif", np.ascontiguousarray(array))
        assert ok
        with zipfile.ZipFile(root / zip_name, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(member, data.tobytes())


def make_coco_stuff164k(root: Path, count: int, size: tuple[int, int] = (480, 640)) -> None:
    """``count`` stuffthingmaps-like label PNGs (0..181, 255) under ``annotations/train2017``."""
    rng = np.random.default_rng(2)
    folder = root / "annotations" / "train2017"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "val2017").mkdir(exist_ok=True)
    for i in range(count):
        cells = rng.integers(0, 182, (size[0] // 16, size[1] // 16)).astype(np.uint8)
        label = np.kron(cells, np.ones((16, 16), np.uint8))
        label[:8] = 255
        cv2.imwrite(str(folder / f"{i:012d}.png"), label)


if __name__ == "__main__":
    main()
