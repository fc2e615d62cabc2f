"""Running a conversion: one job per raw input, over a process pool, with progress and resumption.

A :class:`Job` names its input (``key``), the function that converts it and, when they are known
before it runs, the files it will write. A job is skipped when those files all exist. A job whose
outputs are known only once it has run (the tiles of an image of unknown size, the slices of a
volume) is recorded with its outputs in ``<dst>/.segkit-convert/<name>.jsonl`` and skipped on a
later run while they all exist. Outputs are written under a temporary name and renamed (see
:mod:`segkit.data.convert.outputs`), so a file that exists is complete: an interrupted run resumes
where it stopped.

Progress is a ``rich`` bar on a terminal and a log line every tenth of the work otherwise.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConversionReport", "Job", "run_jobs"]

log = logging.getLogger("segkit.data.convert")

MANIFEST_DIR = ".segkit-convert"


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion did. Counts are output files; ``seconds`` is wall-clock time."""

    name: str
    written: int
    skipped: int
    seconds: float
    files_per_second: float

    def __str__(self) -> str:
        return (
            f"{self.name}: wrote {self.written} files, skipped {self.skipped} already there, "
            f"{self.seconds:.1f} s ({self.files_per_second:.1f} files/s)"
        )


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args)`` converts one raw input and returns the path or the paths it
    wrote.

    ``fn`` must be a module-level function (it is pickled to the worker processes). ``outputs``
    lists the files the job writes when they are known in advance; leave it empty otherwise.
    """

    key: str
    fn: Callable[..., str | Path | Sequence[str | Path]]
    args: tuple[Any, ...] = ()
    outputs: tuple[Path, ...] = field(default=())


def run_jobs(
    name: str, jobs: Iterable[Job], dst: str | Path, *, workers: int = 2
) -> ConversionReport:
    """Run ``jobs`` with ``workers`` processes (1: in this process), skipping finished ones.

    Returns the report; a failing job stops the run with its key in the error.
    """
    start = time.perf_counter()
    dst = Path(dst)
    manifest = _Manifest(dst / MANIFEST_DIR / f"{name}.jsonl")
    pending: list[Job] = []
    skipped = 0
    for job in jobs:
        done = job.outputs or manifest.outputs(job.key)
        if done and all(p.is_file() for p in done):
            skipped += len(done)
        else:
            pending.append(job)

    written = 0
    progress = _Progress(name, len(pending))
    try:
        for job, paths in _execute(pending, workers):
            written += len(paths)
            if not job.outputs:
                manifest.record(job.key, paths)
            progress.advance()
    finally:
        progress.close()
        manifest.close()

    seconds = time.perf_counter() - start
    report = ConversionReport(name, written, skipped, seconds, written / max(seconds, 1e-9))
    log.info("%s", report)
    return report


def _execute(jobs: list[Job], workers: int) -> Iterable[tuple[Job, list[Path]]]:
    """Yield ``(job, written paths)`` as jobs finish."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, _call(job)
        return
    executor = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=_pool_context(), initializer=_init_worker
    )
    try:
        # A bounded window of submitted jobs keeps memory flat on datasets of 100k files.
        queue = iter(jobs)
        running: dict[Future, Job] = {}
        window = 4 * workers
        while True:
            for job in queue:
                running[executor.submit(job.fn, *job.args)] = job
                if len(running) >= window:
                    break
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    paths = future.result()
                except Exception as err:
                    raise RuntimeError(f"converting {job.key} failed: {err}") from err
                yield job, _as_paths(paths)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _call(job: Job) -> list[Path]:
    try:
        return _as_paths(job.fn(*job.args))
    except Exception as err:
        raise RuntimeError(f"converting {job.key} failed: {err}") from err


def _as_paths(result: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(result, (str, Path)):
        return [Path(result)]
    return [Path(p) for p in result]


def _pool_context() -> multiprocessing.context.BaseContext:
    # Forked workers inherit the imported modules (importing segkit costs seconds per process);
    # elsewhere (macOS, Windows) the platform default.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _init_worker() -> None:
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:  # the processes are the parallelism; OpenCV's threads only oversubscribe
        cv2.setNumThreads(1)


class _Manifest:
    """Outputs of finished jobs whose outputs were not known in advance (JSON lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent.parent
        self._done: dict[str, list[str]] = {}
        self._file = None
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interrupted run
                    continue
                self._done[entry["key"]] = entry["outputs"]

    def outputs(self, key: str) -> tuple[Path, ...]:
        return tuple(self.root / p for p in self._done.get(key, ()))

    def record(self, key: str, paths: Sequence[Path]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a")
        rel = [Path(os.path.relpath(p, self.root)).as_posix() for p in paths]
        self._file.write(json.dumps({"key": key, "outputs": rel}) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Progress:
    """A rich progress bar on a terminal; plain log lines at every tenth otherwise."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.count = name, total, 0
        self._bar = None
        self._step = max(1, -(-total // 10))
        if total and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=total)
        elif total:
            log.info("%s: %d inputs to convert", name, total)

    def advance(self) -> None:
        self.count += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        elif self.count % self._step == 0 or self.count == self.total:
            log.info(
                "%s: %d/%d (%d%%)",
                self.name,
                self.count,
                self.total,
                100 * self.count // self.total,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
