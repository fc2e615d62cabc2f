"""Test-only callbacks and utilities (importable as ``_target_``s: tests/ is on sys.path)."""

from __future__ import annotations

import lightning as L


class CrashAt(L.Callback):
    """Raises at the start of training step ``step``: a run killed after ``step`` steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")
