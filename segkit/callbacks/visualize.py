"""Saves ground truth beside predictions as a PNG grid after each validation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from segkit.viz.depth import colorize_depth
from segkit.viz.overlay import overlay, palette_for

__all__ = ["SaveSamples"]


class SaveSamples(L.Callback):
    """After each validation, writes ``dirpath/val_step<step>.png``: one row per sample of the
    first validation batch, with the image, then for a segmentation head the ground-truth and
    predicted overlays, for a depth head the ground-truth and predicted depth (one colour scale
    per row, invalid ground truth black).

    Args:
        dirpath: where the PNGs go (the run's ``visuals/`` folder by default config).
        num_samples: rows (taken from the first validation batch).
        alpha: overlay opacity.
    """

    def __init__(self, dirpath: str | Path, num_samples: int = 4, alpha: float = 0.5) -> None:
        self.dirpath = Path(dirpath)
        self.num_samples = num_samples
        self.alpha = alpha
        self._batch: dict | None = None

    def on_validation_batch_start(
        self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            n = self.num_samples
            self._batch = {
                k: (v[:n].detach() if isinstance(v, torch.Tensor) else v[:n])
                for k, v in batch.items()
            }

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batch is None:
            return
        batch, self._batch = self._batch, None
        model = pl_module.model
        with torch.no_grad():
            outputs = model.inference(batch["image"].float())
        rows = []
        for i, meta in enumerate(batch["meta"]):
            h, w = meta["img_shape"]
            image = batch["image"][i, :, :h, :w].permute(1, 2, 0).byte().cpu().numpy()
            cells = [image]
            if "seg" in outputs and "mask" in batch:
                palette = palette_for(outputs["seg"].shape[1], model.palette)
                pred = outputs["seg"][i, :, :h, :w].argmax(0).cpu().numpy()
                truth = batch["mask"][i, :h, :w].cpu().numpy()
                ignored = truth == model.ignore_index
                gt = overlay(image, np.where(ignored, 0, truth), palette, self.alpha)
                gt[ignored] = image[ignored]
                cells += [gt, overlay(image, pred, palette, self.alpha)]
            if "depth" in outputs and "depth" in batch:
                truth = batch["depth"][i, :h, :w].float().cpu().numpy()
                pred = outputs["depth"][i, 0, :h, :w].float().cpu().numpy()
                valid = truth[truth > 0]
                lo, hi = (valid.min(), valid.max()) if valid.size else (pred.min(), pred.max())
                cells += [colorize_depth(truth, lo, hi), colorize_depth(pred, lo, hi)]
            rows.append(np.concatenate(cells, axis=1))
        width = max(r.shape[1] for r in rows)
        grid = np.concatenate(
            [
                np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                for r in rows
            ]
        )
        self.dirpath.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(self.dirpath / f"val_step{trainer.global_step:06d}.png")
