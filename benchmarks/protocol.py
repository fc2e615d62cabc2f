"""The measurement protocol that the segkit and MMSegmentation sides share.

Both sides import this file (each from its own virtual environment, so it needs nothing beyond
numpy and the standard library): the cases, their inputs, the command line and the timing rule
are defined once here, which is what makes the two columns of the table comparable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "CASES",
    "IGNORE_INDEX",
    "LOADER_WORKER_THREADS",
    "METRIC_PAIRS",
    "NUM_CLASSES",
    "SEED",
    "THREADS",
    "Case",
    "Result",
    "case_parser",
    "image_batch",
    "label_batch",
    "metric_pairs",
    "run_case",
    "time_calls",
]

SEED = 0
THREADS = 2  # the machine's cores; both sides run with this many torch threads
# ... except the data pipeline: it runs in DataLoader workers, which PyTorch starts with one torch
# thread (torch/utils/data/_utils/worker.py), so that is the setting to measure it in.
LOADER_WORKER_THREADS = 1
LOADER_WORKERS = (1, 2)  # DataLoader worker processes of the loader_* cases
LOADER_BATCH = 8
NUM_CLASSES = 150  # ADE20K
IGNORE_INDEX = 255
METRIC_PAIRS = 200
METRIC_SIZE = (512, 512)


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        name: the case name both scripts accept.
        unit: ``"s"`` (lower is better) or ``"images/s"`` (higher is better).
        what: what is measured, for the notes under the table.
    """

    name: str
    unit: str
    what: str

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "images/s"


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "train_segformer_b0",
            "s",
            "SegFormer-B0 train step (forward, loss, backward, AdamW step), batch 2 of 512x512",
        ),
        Case(
            "train_deeplabv3plus_r50",
            "s",
            "DeepLabV3+ R50-D8 train step incl. FCN auxiliary loss, SGD, batch 2 of 512x512",
        ),
        Case("infer_segformer_b0", "s", "SegFormer-B0 predict, one 512x512 image, whole"),
        Case("infer_deeplabv3plus_r50", "s", "DeepLabV3+ R50-D8 predict, one 512x512 image, whole"),
        Case(
            "slide_segformer_b0_cityscapes",
            "s",
            "SegFormer-B0 (19 classes) sliding window, one 1024x2048 image, crop 1024, stride 768",
        ),
        Case(
            "data_ade20k",
            "images/s",
            "ADE20K training pipeline in one process over 683x512 JPEG + PNG pairs",
        ),
        *(
            Case(
                f"loader_ade20k_{w}w",
                "images/s",
                f"ADE20K training DataLoader, {w} worker{'s' if w > 1 else ''}, batch 8, over "
                "512x512 JPEG + PNG pairs (reading, pipeline, collation into tensors)",
            )
            for w in LOADER_WORKERS
        ),
        Case("metric_iou", "s", "mIoU of 200 prediction/label pairs of 512x512, 150 classes"),
    )
}


def case_parser(description: str) -> argparse.ArgumentParser:
    """The command line both measuring scripts accept, so ``bench.py`` drives them alike."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (data: passes)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--data", help="data_ade20k: an ADE20K-layout folder made by bench.py")
    return parser


def needs_data(case: str) -> bool:
    """Whether ``case`` reads an ADE20K-layout folder (made by ``bench.py``)."""
    return case == "data_ade20k" or case.startswith("loader_")


def run_case(
    case: str,
    timed: dict[str, Callable[[], list[float]]],
    data_pipeline: Callable[[str], list[float]],
    metric: Callable[[], tuple[list[float], float, float]],
    data: str | None,
    versions: str,
    loader: Callable[[str, int], list[float]] | None = None,
) -> Result:
    """Measure ``case`` with one side's functions: ``timed`` for the model cases,
    ``data_pipeline(folder)`` for ``data_ade20k``, ``loader(folder, workers)`` for the
    ``loader_*`` cases, ``metric()`` -> (samples, mIoU, reported mIoU) for ``metric_iou``; both
    scripts dispatch through here."""
    if case == "metric_iou":
        samples, miou, reported = metric()
        return Result.of(case, samples, miou=miou, miou_reported=reported, versions=versions)
    if needs_data(case) and data is None:
        raise SystemExit(f"{case} needs --data DIR (bench.py makes one)")
    if case == "data_ade20k":
        return Result.of(case, data_pipeline(data), versions=versions)
    if case.startswith("loader_"):
        assert loader is not None
        workers = int(case.rsplit("_", 1)[1].rstrip("w"))
        return Result.of(case, loader(data, workers), versions=versions)
    return Result.of(case, timed[case](), versions=versions)


@dataclass
class Result:
    """What one measurement reports, printed as one JSON line: the only interface between the
    processes.

    Attributes:
        case, unit: as in :data:`CASES`.
        median: the median of ``samples``, robust to the odd slow call on a shared machine.
        samples: every timed call (seconds, or images/s for the data case).
        miou: metric case: the mIoU as a fraction, at full precision.
        miou_reported: metric case: the mIoU as the library reports it, as a fraction
            (MMSegmentation rounds its percentage to two decimals).
        versions: the measured libraries' versions, for the record.
    """

    case: str
    unit: str
    median: float
    samples: list[float]
    miou: float | None = None
    miou_reported: float | None = None
    versions: str = ""

    @classmethod
    def of(cls, case: str, samples: list[float], **extra: float | str) -> Result:
        return cls(case, CASES[case].unit, statistics.median(samples), samples, **extra)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Result:
        return cls(**json.loads(line))


def time_calls(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls
    (the first calls pay for allocator growth and one-off kernel selection)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def image_batch(n: int, height: int, width: int) -> np.ndarray:
    """``(n, 3, height, width)`` uint8 images in 0-255, the same on both sides."""
    rng = np.random.default_rng(SEED)
    return rng.integers(0, 256, size=(n, 3, height, width), dtype=np.uint8)


def label_batch(n: int, height: int, width: int) -> np.ndarray:
    """``(n, height, width)`` int64 labels in ``0..NUM_CLASSES-1``, the same on both sides."""
    rng = np.random.default_rng(SEED + 1)
    return rng.integers(0, NUM_CLASSES, size=(n, height, width), dtype=np.int64)


def metric_pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``METRIC_PAIRS`` ``(prediction, label)`` pairs of ``METRIC_SIZE`` int64 maps drawn from
    one ``default_rng(SEED)`` stream.

    Half of the predictions agree with the label, so the mIoU is far from zero and a wrong
    confusion matrix would show; 5% of the labels are ``IGNORE_INDEX``, so the ignore rule is
    exercised too.
    """
    rng = np.random.default_rng(SEED)
    for _ in range(METRIC_PAIRS):
        label = rng.integers(0, NUM_CLASSES, size=METRIC_SIZE, dtype=np.int64)
        other = rng.integers(0, NUM_CLASSES, size=METRIC_SIZE, dtype=np.int64)
        pred = np.where(rng.random(METRIC_SIZE) < 0.5, label, other)
        label[rng.random(METRIC_SIZE) < 0.05] = IGNORE_INDEX
        yield pred, label
