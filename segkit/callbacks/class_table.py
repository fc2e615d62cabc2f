"""Prints the per-class metric table and the summary after each evaluation (and the depth
metrics of models with a depth head)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table
from torch import Tensor

__all__ = ["ClassTable", "format_depth_table", "format_table"]

DEPTH_COLUMNS = ("d1", "d2", "d3", "AbsRel", "SqRel", "RMSE", "RMSE_log", "log10", "SILog")


def format_depth_table(results: Mapping[str, Tensor], title: str = "") -> Table:
    """One row of depth metrics (d1-d3 in %, errors in metres or as ratios, as MMSegmentation)."""
    table = Table(title=title)
    present = [c for c in DEPTH_COLUMNS if c in results]
    for c in present:
        table.add_column(c, justify="right")
    table.add_row(
        *(
            f"{100 * float(results[c]):.2f}" if c.startswith("d") else f"{float(results[c]):.4f}"
            for c in present
        )
    )
    return table


def format_table(
    results: Mapping[str, Tensor], class_names: Sequence[str] | None, title: str = ""
) -> Table:
    """A rich table: one row per class (IoU, Acc, Dice, Fscore in %), then the summary row."""
    n = len(results["IoU"])
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    table = Table(title=title)
    table.add_column("class")
    columns = ("IoU", "Acc", "Dice", "Fscore")
    for c in columns:
        table.add_column(c, justify="right")

    def pct(v: float) -> str:
        return "nan" if math.isnan(v) else f"{100 * v:.2f}"

    for i, name in enumerate(names):
        table.add_row(name, *(pct(float(results[c][i])) for c in columns))
    table.add_section()
    table.add_row("mean", *(pct(float(results[f"m{c}"])) for c in columns))
    table.caption = f"aAcc {pct(float(results['aAcc']))}  mIoU {pct(float(results['mIoU']))}"
    return table


class ClassTable(L.Callback):
    """After validation and test, prints the per-class table of ``pl_module.results[stage]``."""

    def __init__(self, console_width: int = 100) -> None:
        self.console = Console(width=console_width)

    @rank_zero_only
    def _print(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.sanity_checking or stage not in getattr(pl_module, "results", {}):
            return
        title = f"{stage} metrics at step {trainer.global_step}"
        results = pl_module.results[stage]
        if "IoU" in results:
            self.console.print(format_table(results, pl_module.model.class_names, title))
        if "AbsRel" in results:
            self.console.print(
                format_depth_table(results, f"{stage} depth at step {trainer.global_step}")
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer, pl_module, "test")
