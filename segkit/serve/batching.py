"""Dynamic batching: requests from the event loop are gathered into batches run by one thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchInfo", "BatcherStoppedError", "DynamicBatcher"]

log = logging.getLogger("segkit.serve")

T = TypeVar("T")  # one request's input
R = TypeVar("R")  # one request's result


class BatcherStoppedError(RuntimeError):
    """The batcher is not running: the server is starting up or shutting down."""


@dataclass(frozen=True)
class BatchInfo:
    """How a request was served: batch size, seconds queued before its batch started, seconds
    the batch's model call took."""

    batch_size: int
    queue_s: float
    run_s: float


@dataclass
class _Pending(Generic[T]):
    item: T
    key: Hashable
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()


class DynamicBatcher(Generic[T, R]):
    """Collects concurrent requests for up to ``max_wait_ms`` or ``max_batch_size`` requests,
    then runs them with one ``run(items)`` call on a single worker thread.

    The event loop never blocks on the model, and the model runs one batch at a time (a model is
    not thread-safe: an open-vocabulary query swaps its classes during the call). Items whose
    ``key`` differs (e.g. other open-vocabulary classes) cannot share a call: a gathered batch is
    split by key, one ``run`` per key, in arrival order.

    Args:
        run: ``items -> results`` (one per item, same order); may raise.
        max_batch_size: most items per ``run`` call; 1 disables batching.
        max_wait_ms: how long the first request of a batch waits for others to join it.

    If ``run`` raises for a batch of several items, each item is run again on its own so the
    error reaches only the request that caused it; the worker thread never dies of a request.
    """

    def __init__(
        self, run: Callable[[list[T]], Sequence[R]], max_batch_size: int = 8, max_wait_ms: float = 5
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run = run
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="segkit-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, fail the requests still queued, and end the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the batcher thread did not stop within %.0f s", timeout)
        else:
            self._drain()  # a request that raced the stop signal into the queue
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ requests
    async def submit(self, item: T, key: Hashable = None) -> tuple[R, BatchInfo]:
        """Queue ``item`` and wait for its result; re-raises the exception ``run`` raised for it."""
        if not self.running:
            raise BatcherStoppedError(
                "the model worker is not running (server starting or stopping)"
            )
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Pending(item, key, future, loop))
        return await future

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._drain()
                return
            batch = [first]
            deadline = time.perf_counter() + self.max_wait_s
            stop = False
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            groups: dict[Hashable, list[_Pending]] = {}
            for pending in batch:
                groups.setdefault(pending.key, []).append(pending)
            for group in groups.values():
                self._run_group(group)
            if stop:
                self._drain()
                return

    def _run_group(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            results = list(self.run([p.item for p in group]))
            if len(results) != len(group):
                raise RuntimeError(f"run returned {len(results)} results for {len(group)} items")
        except Exception as err:
            if len(group) == 1:
                self._resolve(group[0], None, err, started, time.perf_counter() - started, 1)
                return
            for pending in group:  # find whose input failed: each alone
                self._run_group([pending])
            return
        run_s = time.perf_counter() - started
        for pending, result in zip(group, results):
            self._resolve(pending, result, None, started, run_s, len(group))

    @staticmethod
    def _resolve(
        pending: _Pending,
        result: Any,
        error: BaseException | None,
        started: float,
        run_s: float,
        size: int,
    ) -> None:
        info = BatchInfo(size, started - pending.enqueued, run_s)

        def settle() -> None:
            if pending.future.done():  # the client went away and the request was cancelled
                return
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result((result, info))

        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits for it
            pending.loop.call_soon_threadsafe(settle)

    def _drain(self) -> None:
        """Fail whatever is still queued after a stop."""
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not _STOP:
                err = BatcherStoppedError("the server is shutting down")
                self._resolve(pending, None, err, time.perf_counter(), 0.0, 0)
