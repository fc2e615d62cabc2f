"""segkit against MMSegmentation 1.2.2, side by side on this machine.

    /work/venv/bin/python benchmarks/bench.py [--quick] [--mmseg-python /work/mmseg-venv/bin/python]
        [--rounds 2] [--repeats 5] [--cases train_segformer_b0 ...] [--out FILE] [--require-mmseg]

Every case (``protocol.CASES``) is measured by ``segkit_cases.py`` (this interpreter) and by
``mmseg_reference.py`` (MMSegmentation's interpreter), each in a fresh process. The two sides
alternate, case by case, and swap order from one round to the next (segkit then MMSegmentation,
then MMSegmentation then segkit) so that load drifting on the shared machine falls on both.
The table gives each side's median over all rounds' timed calls and the ratio, oriented so that
above 1 means segkit is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import protocol

HERE = Path(__file__).resolve().parent
SIDES = {"segkit": HERE / "segkit_cases.py", "mmseg": HERE / "mmseg_reference.py"}
DEFAULT_MMSEG_PYTHON = "/work/mmseg-venv/bin/python"
DATA_IMAGES = 100
DATA_SIZE = (512, 683)  # (height, width): ADE20K's most common image size
LOADER_SIZE = (512, 512)  # the loader_* cases: 512x512 JPEGs
# Other processes using more than this many cores on average during a run make it unreliable:
# a 2-thread op on a 2-core machine then waits for its second thread (measured here: bincount
# 60x slower with one core taken).
BUSY_CORES = 0.25


@dataclass
class Measurements:
    """One side's results for one case over the rounds (``error`` if a run failed), and how
    many cores other processes used on average during each run."""

    results: list[protocol.Result] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        samples = [s for r in self.results for s in r.samples]
        return statistics.median(samples) if samples and self.error is None else None

    def cell(self) -> str:
        """The table cell: the pooled median, and each round's median when there are several."""
        if self.error is not None:
            return "failed"
        if self.median is None:
            return "-"
        text = _number(self.median)
        if len(self.results) > 1:
            text += " [" + ", ".join(_number(r.median) for r in self.results) + "]"
        return text


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round, 1 warm-up, 1 timed call"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per run (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per run (default 2)")
    parser.add_argument(
        "--cases", nargs="+", choices=list(protocol.CASES), default=list(protocol.CASES)
    )
    parser.add_argument(
        "--mmseg-python", default=DEFAULT_MMSEG_PYTHON, help="MMSegmentation's interpreter"
    )
    parser.add_argument(
        "--require-mmseg", action="store_true", help="fail if MMSegmentation is missing"
    )
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per run before giving up"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats, args.warmup = 1, 1, 1
    return args


def make_ade20k_folder(root: Path, n: int = DATA_IMAGES, size: tuple[int, int] = DATA_SIZE) -> Path:
    """``n`` JPEG + PNG pairs in ADE20K's layout (``images/training``, ``annotations/training``).

    Images are smooth random fields plus mild noise, so the JPEGs are about as large (and as slow
    to decode) as photographs, which white noise would not be; labels are blocky regions of raw
    values 0..150 (0 is ADE20K's "other", ignored by both pipelines).
    """
    rng = np.random.default_rng(protocol.SEED)
    h, w = size
    images, labels = root / "images" / "training", root / "annotations" / "training"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(n):
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.float32)
        image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 8, size=image.shape).astype(np.float32)
        cv2.imwrite(str(images / f"{i:05d}.jpg"), np.clip(image, 0, 255).astype(np.uint8))
        regions = rng.integers(0, protocol.NUM_CLASSES + 1, size=(8, 11), dtype=np.uint8)
        label = cv2.resize(regions, (w, h), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(labels / f"{i:05d}.png"), label)
    return root


class OtherLoad:
    """Cores used by processes other than this one and its children, from ``/proc/stat``
    (busy and stolen time of the whole machine) minus our own CPU time; ``None`` off Linux."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        ours = sum(
            resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return machine, ours, time.monotonic()

    def cores(self) -> float | None:
        """Average cores used by others since construction."""
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        machine, ours, wall = (b - a for a, b in zip(self.start, end))
        return max(machine - ours, 0.0) / wall


def mmseg_missing(python: str) -> str | None:
    """Why MMSegmentation cannot be run with ``python`` (``None``: it can)."""
    if not Path(python).is_file():
        return f"{python} not found"
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; assert u.find_spec('mmseg')"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"mmsegmentation is not installed for {python}"


def run_side(
    python: str, side: str, case: str, args: argparse.Namespace, data: Path | None
) -> protocol.Result:
    """One fresh process measuring ``case`` on ``side``; its last stdout line is the result."""
    command = [
        python,
        str(SIDES[side]),
        case,
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
    ]
    if data is not None:
        command += ["--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, cwd=HERE)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{side} {case} exited with {done.returncode}:\n{tail}")
    return protocol.Result.from_json(lines[-1])


def run_into(
    measurements: Measurements,
    python: str,
    side: str,
    case: str,
    args: argparse.Namespace,
    data: Path | None,
) -> None:
    """Add one run's result to ``measurements``; after a failure, record it and skip the
    side's later rounds of the case (the other cases still run)."""
    if measurements.error is not None:
        return
    others = OtherLoad()
    try:
        result = run_side(python, side, case, args, data if protocol.needs_data(case) else None)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        measurements.error = str(err)
        print(f"  failed: {err}", file=sys.stderr, flush=True)
        return
    measurements.results.append(result)
    busy = others.cores()
    if busy is not None:
        measurements.others.append(busy)
    note = f" (other processes: {busy:.2f} cores)" if busy is not None else ""
    print(f"  {result.median:.3f} {result.unit}{note}", flush=True)


def check_miou(segkit: Measurements, mmseg: Measurements) -> str | None:
    """Whether the two metric implementations agree; ``None`` when either is missing.

    segkit's full-precision mIoU is compared with the value recomputed from IoUMetric's own
    areas (to 1e-6), and with the rounded percentage IoUMetric reports (to its rounding).
    """
    if not segkit.results or not mmseg.results or segkit.error or mmseg.error:
        return None
    ours, theirs = segkit.results[-1], mmseg.results[-1]
    assert ours.miou is not None and theirs.miou is not None and theirs.miou_reported is not None
    exact = abs(ours.miou - theirs.miou) <= 1e-6
    # the report is a percentage with two decimals: within half of its last digit
    rounded = abs(ours.miou * 100 - theirs.miou_reported * 100) <= 0.005 + 1e-6
    verdict = "agree" if exact and rounded else "DISAGREE"
    return (
        f"mIoU {verdict}: segkit {ours.miou:.8f}, IoUMetric {theirs.miou:.8f} "
        f"(reported {theirs.miou_reported * 100:.2f}%)"
    )


def ratio(case: protocol.Case, segkit: Measurements, mmseg: Measurements) -> str:
    """Above 1 means segkit is faster, whatever the unit."""
    if segkit.median is None or mmseg.median is None:
        return "-"
    value = segkit.median / mmseg.median if case.higher_is_better else mmseg.median / segkit.median
    return f"{value:.2f}"


def table(
    measured: dict[str, dict[str, Measurements]], notes: list[str], args: argparse.Namespace
) -> str:
    """The markdown table, the protocol and the notes."""
    rows = [
        "| case | unit | segkit | MMSegmentation | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, sides in measured.items():
        case = protocol.CASES[name]
        rows.append(
            f"| {name} | {case.unit} | {sides['segkit'].cell()} | {sides['mmseg'].cell()} "
            f"| {ratio(case, sides['segkit'], sides['mmseg'])} |"
        )
    protocol_lines = [
        "",
        f"Ratio: MMSegmentation time / segkit time (images/s: segkit / MMSegmentation); above 1 "
        f"means segkit is faster. Cells: median of all timed calls [each round's median]. "
        f"{args.rounds} round(s) alternating the order of the sides, {args.warmup} warm-up + "
        f"{args.repeats} timed call(s) per run, each run a fresh process, {protocol.THREADS} "
        f"torch threads, fp32, random weights, CPU.",
        "",
        *[f"- {name}: {protocol.CASES[name].what}" for name in measured],
        "",
        *[f"- {note}" for note in notes],
    ]
    return "\n".join(rows + protocol_lines)


def environment(measured: dict[str, dict[str, Measurements]]) -> list[str]:
    """The machine and the libraries, as far as they matter to the figures."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        names = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
        ]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    lines = [f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"]
    for side, label in (("segkit", "segkit side"), ("mmseg", "MMSegmentation side")):
        versions = {r.versions for sides in measured.values() for r in sides[side].results}
        lines += [f"{label}: {v}" for v in sorted(versions) if v]
    return lines


def busy_notes(measured: dict[str, dict[str, Measurements]]) -> list[str]:
    """How much other processes used the machine during the runs, and a warning if too much."""
    others = [c for sides in measured.values() for m in sides.values() for c in m.others]
    if not others:
        return []
    notes = [
        f"other processes used {statistics.mean(others):.2f} cores on average during the runs, "
        f"{max(others):.2f} at most"
    ]
    if max(others) > BUSY_CORES:
        notes.append(
            "WARNING: the machine was busy; with every core in use, 2-thread runs wait on each "
            "other and these figures (ratios included) are unreliable"
        )
    return notes


def main() -> int:
    args = parse_args()
    missing = mmseg_missing(args.mmseg_python)
    if missing and args.require_mmseg:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    sides = ["segkit"] if missing else ["segkit", "mmseg"]
    pythons = {"segkit": sys.executable, "mmseg": args.mmseg_python}
    notes: list[str] = []
    if missing:
        notes.append(f"MMSegmentation columns skipped: {missing}")
    measured = {case: {side: Measurements() for side in SIDES} for case in args.cases}
    with tempfile.TemporaryDirectory(prefix="segkit-bench-") as tmp:
        folders = {
            "data_ade20k": make_ade20k_folder(Path(tmp) / "683x512")
            if "data_ade20k" in args.cases
            else None,
            "loader": make_ade20k_folder(Path(tmp) / "512x512", size=LOADER_SIZE)
            if any(c.startswith("loader_") for c in args.cases)
            else None,
        }
        for round_ in range(args.rounds):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for case in args.cases:
                for side in order:
                    print(
                        f"round {round_ + 1}/{args.rounds}  {case:30s} {side:7s}",
                        end="",
                        flush=True,
                    )
                    data = folders["loader" if case.startswith("loader_") else "data_ade20k"]
                    run_into(measured[case][side], pythons[side], side, case, args, data)
    notes = environment(measured) + notes + busy_notes(measured)
    metric = measured.get("metric_iou")
    agreement = check_miou(metric["segkit"], metric["mmseg"]) if metric else None
    if agreement:
        notes.append(agreement)
    text = table(measured, notes, args)
    print("\n" + text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    failed = any(m.error for sides_ in measured.values() for m in sides_.values())
    return 1 if failed or (agreement is not None and "DISAGREE" in agreement) else 0


if __name__ == "__main__":
    sys.exit(main())
