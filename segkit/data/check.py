"""Validating a dataset on disk: pairs, decodability, sizes, label values and class balance."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from segkit.data.datasets.folder import SegmentationFolder
from segkit.data.io import CorruptFileError, read_image
from segkit.data.labels import LabelError, LabelSpec

__all__ = ["SplitReport", "check_split", "report_table"]


@dataclass
class SplitReport:
    """What :func:`check_split` found in one split. ``pixels[c]`` counts pixels of class ``c``
    (the last entry: ignored pixels); ``images_with[c]`` counts images containing class ``c``."""

    name: str
    samples: int
    missing: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    bad_labels: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None
    images_with: np.ndarray | None = None

    @property
    def problems(self) -> int:
        return sum(
            len(x)
            for x in (
                self.missing,
                self.orphans,
                self.unreadable,
                self.size_mismatch,
                self.bad_labels,
            )
        )


def _check_one(dataset: SegmentationFolder, index: int, num_classes: int) -> dict:
    image_path = dataset.images[index]
    out: dict = {}
    try:
        image = read_image(image_path)
    except (CorruptFileError, FileNotFoundError) as err:
        return {"unreadable": str(err)}
    if dataset.masks is None:
        return out
    try:
        mask = dataset.load_mask(index)
    except LabelError as err:
        return {"bad_label": str(err)}
    except (CorruptFileError, FileNotFoundError) as err:
        return {"unreadable": str(err)}
    if mask.shape[:2] != image.shape[:2]:
        out["size"] = (
            f"{dataset.masks[index]}: label {mask.shape[:2]} vs image {image.shape[:2]} "
            f"({image_path})"
        )
    ids = np.where(mask == dataset.labels.ignore_index, num_classes, mask).ravel()
    out["counts"] = np.bincount(ids.astype(np.int64), minlength=num_classes + 1)
    return out


def check_split(dataset: SegmentationFolder, name: str, workers: int = 4) -> SplitReport:
    """Read every sample of ``dataset`` (built with ``strict=False``) and collect every problem
    instead of stopping at the first one."""
    labels: LabelSpec = dataset.labels
    n = labels.num_classes
    report = SplitReport(
        name, len(dataset), list(dataset.missing), list(dataset.orphans),
        pixels=np.zeros(n + 1, np.int64), images_with=np.zeros(n + 1, np.int64),
    )  # fmt: skip
    with ThreadPoolExecutor(max(1, workers)) as pool:  # decoding releases the GIL
        results = pool.map(lambda i: _check_one(dataset, i, n), range(len(dataset)))
        for result in results:
            if "unreadable" in result:
                report.unreadable.append(result["unreadable"])
            if "bad_label" in result:
                report.bad_labels.append(result["bad_label"])
            if "size" in result:
                report.size_mismatch.append(result["size"])
            if "counts" in result:
                report.pixels += result["counts"]
                report.images_with += result["counts"] > 0
    return report


def report_table(report: SplitReport, class_names: Sequence[str] | None) -> Table:
    """The class histogram of a split as a rich table (pixel share and images per class)."""
    assert report.pixels is not None and report.images_with is not None
    n = len(report.pixels) - 1
    names = [*(class_names or [str(i) for i in range(n)]), "(ignored)"]
    total = max(int(report.pixels.sum()), 1)
    table = Table(title=f"{report.name}: {report.samples} samples, class balance")
    for column in ("id", "class", "pixels %", "images"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for i, name in enumerate(names):
        ident = str(i) if i < n else "-"
        share = f"{100 * report.pixels[i] / total:.2f}"
        table.add_row(ident, name, share, str(int(report.images_with[i])))
    absent = [names[i] for i in range(n) if report.pixels[i] == 0]
    if absent:
        table.caption = (
            f"never present: {', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}"
        )
    return table
