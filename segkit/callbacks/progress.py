"""Progress display: a rich bar on a terminal, periodic plain lines otherwise (CI, log files).

Both count training iterations (optimizer steps) over the whole run when training is
iteration-based (``max_steps``), and show the loss, the learning rate and the time remaining.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar

__all__ = ["PlainProgressBar", "RichIterationProgressBar", "current_lr", "progress_bar"]


def progress_bar(
    refresh_rate: int = 10,
    plain_refresh_rate: int = 50,
    console_kwargs: Mapping[str, Any] | None = None,
) -> ProgressBar:
    """:class:`RichIterationProgressBar` (``refresh_rate`` redraws per second) when stdout is a
    terminal, else :class:`PlainProgressBar` (a line every ``plain_refresh_rate`` steps): no
    carriage returns or colour codes in CI logs and files."""
    if sys.stdout.isatty():
        return RichIterationProgressBar(
            refresh_rate=refresh_rate, console_kwargs=dict(console_kwargs or {})
        )
    return PlainProgressBar(refresh_rate=plain_refresh_rate)


def current_lr(trainer: L.Trainer, pl_module: L.LightningModule) -> float | None:
    """The base learning rate as scheduled now: ``pl_module.lr`` times the schedule's current
    factor (``lr / initial_lr`` of a parameter group; groups with multipliers scale this value),
    or the first group's lr when the module has no ``lr``. None before the optimizer exists."""
    if not trainer.optimizers:
        return None
    groups = trainer.optimizers[0].param_groups
    base = getattr(pl_module, "lr", None)
    if base is None:
        return float(groups[0]["lr"])
    for group in groups:
        if group.get("initial_lr"):  # set by torch schedulers; 0 for a frozen group
            return float(base) * float(group["lr"]) / float(group["initial_lr"])
    return float(base)


def _iteration_based(trainer: L.Trainer) -> bool:
    return trainer.max_steps is not None and trainer.max_steps > 0


class RichIterationProgressBar(RichProgressBar):
    """Lightning's :class:`RichProgressBar` (elapsed time, time remaining, it/s, metrics) with the
    learning rate among the metrics, no ``v_num``, and, for iteration-based training, one bar
    over all ``max_steps`` iterations (``Train 1200/2000``) instead of one per epoch (Lightning
    counts batches of the current epoch, which for ``max_epochs=-1`` reads ``Epoch 3/-2 30/62``).
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        lr = current_lr(trainer, pl_module)
        if lr is not None:
            items["lr"] = f"{lr:.2e}"  # a string: the theme's ".3f" would print 0.000
        return items

    @property
    def total_train_batches(self) -> int | float:
        if _iteration_based(self.trainer):
            return self.trainer.max_steps
        return super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if _iteration_based(self.trainer):
            return f"{'Train':{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _iteration_based(trainer) and self.train_progress_bar_id is not None:
            return  # one bar for the whole run: a new epoch does not reset it
        super().on_train_epoch_start(trainer, pl_module)
        if _iteration_based(trainer) and self.progress is not None:
            # a resumed run starts at its step (rich's speed skips this first jump)
            self.progress.update(self.train_progress_bar_id, completed=trainer.global_step)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not _iteration_based(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if self.is_enabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class PlainProgressBar(ProgressBar):
    """One plain line every ``refresh_rate`` training steps and one after each validation, for
    logs that are not terminals::

        step 50/2000 (2%) | loss 0.4120 | lr 5.90e-05 | 3.1 it/s | eta 0:10:31
        val step 500 | mIoU 0.6123 | aAcc 0.9012 | mAcc ...

    The training values (``train/*`` progress-bar metrics, prefix dropped) are averaged over the
    steps since the previous line; ``it/s`` and the ETA come from the steps of this process
    (a resumed run does not count the steps before it). The total is
    ``trainer.estimated_stepping_batches`` (``max_steps``, or epochs x batches). Written to
    ``sys.stdout`` at print time (rank zero only, like every Lightning progress bar).
    """

    def __init__(self, refresh_rate: int = 50) -> None:
        super().__init__()
        if refresh_rate < 1:
            raise ValueError(f"refresh_rate must be >= 1, got {refresh_rate}")
        self.refresh_rate = refresh_rate
        self._enabled = True
        self._start: tuple[float, int] | None = None
        self._last_step = -1
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._enabled:
            print(*args, file=sys.stdout, flush=True, **kwargs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.monotonic(), trainer.global_step)
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if step == self._last_step:  # gradient accumulation: no optimizer step yet
            return
        self._last_step = step
        for key, value in trainer.progress_bar_metrics.items():
            if key.startswith("train/") and isinstance(value, (int, float)):
                name = key.removeprefix("train/")
                self._sums[name] = self._sums.get(name, 0.0) + float(value)
                self._counts[name] = self._counts.get(name, 0) + 1
        total = trainer.estimated_stepping_batches
        if step % self.refresh_rate == 0 or step == total:
            self.print(self._train_line(trainer, pl_module, step, total))
            self._sums, self._counts = {}, {}

    def _train_line(
        self, trainer: L.Trainer, pl_module: L.LightningModule, step: int, total: int | float
    ) -> str:
        finite = math.isfinite(total)
        parts = [
            f"step {step}/{int(total)} ({100 * step / total:.0f}%)" if finite else f"step {step}"
        ]
        parts += [f"{k} {self._sums[k] / self._counts[k]:.4f}" for k in self._sums]
        lr = current_lr(trainer, pl_module)
        if lr is not None:
            parts.append(f"lr {lr:.2e}")
        if self._start is not None:
            elapsed = time.monotonic() - self._start[0]
            done = step - self._start[1]
            if elapsed > 0 and done > 0:
                rate = done / elapsed
                parts.append(f"{rate:.2f} it/s" if rate < 10 else f"{rate:.1f} it/s")
                if finite:
                    parts.append(f"eta {timedelta(seconds=round((total - step) / rate))}")
        return " | ".join(parts)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.print(_eval_line(f"val step {trainer.global_step}", trainer.callback_metrics, "val/"))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print(_eval_line("test", trainer.callback_metrics, "test/"))


def _eval_line(head: str, metrics: Mapping[str, Any], prefix: str) -> str:
    """``head | mIoU 0.6123 | aAcc ...``: the scalar ``prefix*`` metrics (not the per-class
    ``prefix/IoU/<class>`` nor per-dataset ones), mIoU first."""
    values = {
        k.removeprefix(prefix): float(v)
        for k, v in metrics.items()
        if k.startswith(prefix) and "/" not in k.removeprefix(prefix)
    }
    order = sorted(values, key=lambda k: (k != "mIoU", k))
    return " | ".join([head, *(f"{k} {values[k]:.4f}" for k in order)])
