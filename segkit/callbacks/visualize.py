"""Saves ground truth beside predictions as a PNG grid after each validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from segkit.callbacks.samples import SamplePrediction, fixed_validation_batch, predict_samples
from segkit.viz.legend import palette_legend
from segkit.viz.overlay import overlay, palette_for

__all__ = ["SaveSamples"]


class SaveSamples(L.Callback):
    """After each validation, writes ``dirpath/val_step<step>.png``: one row per sample (the same
    ``num_samples`` validation samples every time, spread over the dataset), with the image, then
    for a segmentation head the ground-truth and predicted overlays, for a depth head the
    ground-truth and predicted depth (one colour scale per row, invalid ground truth black); for a
    segmentation head the palette legend (class colours and names) on the right.

    Args:
        dirpath: where the PNGs go (the run's ``visuals/`` folder by default config).
        num_samples: rows.
        alpha: overlay opacity.
        legend: draw the palette legend.
    """

    def __init__(
        self, dirpath: str | Path, num_samples: int = 4, alpha: float = 0.5, legend: bool = True
    ) -> None:
        self.dirpath = Path(dirpath)
        self.num_samples = num_samples
        self.alpha = alpha
        self.legend = legend
        self._batch: dict[str, Any] | None = None

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self._batch is None:
            self._batch = fixed_validation_batch(trainer, self.num_samples)
            if self._batch is None:
                return
        model = pl_module.model
        samples = predict_samples(model, self._batch)
        palette = None
        if "seg" in model.heads:
            palette = palette_for(model.heads["seg"].num_classes, model.palette)
        rows = [self._row(s, palette, model.ignore_index) for s in samples]
        width = max(r.shape[1] for r in rows)
        grid = np.concatenate(
            [
                np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                for r in rows
            ]
        )
        if self.legend and palette is not None:
            names = model.class_names or [str(i) for i in range(len(palette))]
            legend = palette_legend(names, palette, max_height=max(grid.shape[0], 360))
            height = max(grid.shape[0], legend.shape[0])
            grid = np.concatenate(
                [
                    np.pad(
                        grid, ((0, height - grid.shape[0]), (0, 4), (0, 0)), constant_values=255
                    ),
                    np.pad(
                        legend, ((0, height - legend.shape[0]), (0, 0), (0, 0)), constant_values=255
                    ),
                ],
                axis=1,
            )
        self.dirpath.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(self.dirpath / f"val_step{trainer.global_step:06d}.png")

    def _row(
        self, s: SamplePrediction, palette: np.ndarray | None, ignore_index: int
    ) -> np.ndarray:
        cells = [s.image]
        if s.mask is not None and s.pred is not None and palette is not None:
            ignored = s.mask == ignore_index
            gt = overlay(s.image, np.where(ignored, 0, s.mask), palette, self.alpha)
            gt[ignored] = s.image[ignored]
            cells += [gt, overlay(s.image, s.pred, palette, self.alpha)]
        cells += s.depth_panels()
        return np.concatenate(cells, axis=1)
