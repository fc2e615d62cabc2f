"""Saves ground truth beside predictions as a PNG grid after each validation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
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
            # Everything at the label size (``ori_shape``): the image and the outputs are cut
            # to the unpadded image and resized when the data resized the image only.
            h, w = meta["img_shape"]
            size = tuple(meta.get("ori_shape", (h, w)))
            image_t = batch["image"][i : i + 1, :, :h, :w].float()
            out = {k: v[i : i + 1, :, :h, :w].float() for k, v in outputs.items()}
            if size != (h, w):
                image_t = F.interpolate(image_t, size=size, mode="bilinear", align_corners=False)
                out = {
                    k: F.interpolate(v, size=size, mode="bilinear", align_corners=False)
                    for k, v in out.items()
                }
            image = image_t[0].permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy()
            oh, ow = size
            cells = [image]
            if "seg" in out and "mask" in batch:
                palette = palette_for(out["seg"].shape[1], model.palette)
                pred = out["seg"][0].argmax(0).cpu().numpy()
                truth = batch["mask"][i, :oh, :ow].cpu().numpy()
                ignored = truth == model.ignore_index
                gt = overlay(image, np.where(ignored, 0, truth), palette, self.alpha)
                gt[ignored] = image[ignored]
                cells += [gt, overlay(image, pred, palette, self.alpha)]
            if "depth" in out and "depth" in batch:
                truth = batch["depth"][i, :oh, :ow].float().cpu().numpy()
                pred = out["depth"][0, 0].cpu().numpy()
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
