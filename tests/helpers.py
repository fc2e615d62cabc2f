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


class MetricHistory(L.Callback):
    """Appends the scalar validation results to ``path`` (JSON lines) after each validation."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_validation_end(self, trainer, pl_module) -> None:
        import json

        if trainer.sanity_checking:
            return
        values = {k: float(v) for k, v in pl_module.results["val"].items() if v.ndim == 0}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer.global_step, **values}) + "\n")
