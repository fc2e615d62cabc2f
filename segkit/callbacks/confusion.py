"""Saves the validation confusion matrix as a PNG after each validation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from segkit.viz.confusion import Normalize, confusion_matrix

__all__ = ["SaveConfusionMatrix"]


class SaveConfusionMatrix(L.Callback):
    """After each validation, writes ``dirpath/confusion_step<step>.png``: the confusion matrix of
    ``pl_module.results["val"]["confmat"]`` (the synced pixel counts of :class:`SegMetrics`) with
    class names on the axes, row-normalised by default (see :func:`segkit.viz.confusion_matrix`).
    Models without a segmentation head write nothing.

    Args:
        dirpath: where the PNGs go (the run's ``visuals/`` folder by default config).
        normalize: ``"true"`` (rows), ``"pred"`` (columns), ``"all"`` or None (pixel counts).
        dpi: resolution of the PNG.
    """

    def __init__(self, dirpath: str | Path, normalize: Normalize = "true", dpi: int = 100) -> None:
        self.dirpath = Path(dirpath)
        self.normalize = normalize
        self.dpi = dpi

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        confmat = getattr(pl_module, "results", {}).get("val", {}).get("confmat")
        if trainer.sanity_checking or confmat is None:
            return
        step = trainer.global_step
        fig = confusion_matrix(
            confmat,
            pl_module.model.class_names,
            normalize=self.normalize,
            title=f"validation at step {step}"
            + (" (rows sum to 1)" if self.normalize == "true" else ""),
        )
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.dirpath / f"confusion_step{step:06d}.png", dpi=self.dpi)
