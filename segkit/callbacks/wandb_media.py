"""Weights & Biases media after each validation: prediction masks, per-class table, confusion
matrix."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from segkit.callbacks.samples import SamplePrediction, fixed_validation_batch, predict_samples
from segkit.viz.confusion import confusion_matrix, figure_to_array

__all__ = ["WandbValidation"]

TABLE_COLUMNS = ("IoU", "Acc", "Dice", "Fscore")


class WandbValidation(L.Callback):
    """After each validation, logs to the run of the trainer's :class:`WandbLogger` (does nothing
    without one), at ``trainer/global_step`` = the training iteration:

    - ``val/samples``: the same ``num_images`` validation samples every time (dataset indices
      ``linspace(0, len - 1, num_images)``), as ``wandb.Image`` with ``predictions`` and
      ``ground_truth`` masks named by class (ignored pixels: ``ignore``); for a depth head, the
      image, ground-truth and predicted depth side by side (one colour scale per sample);
    - ``val/per_class``: a ``wandb.Table`` of class, IoU, Acc, Dice, Fscore (fractions; None for
      a class absent from ground truth and predictions);
    - ``val/confusion_matrix``: W&B's confusion-matrix chart (``wandb/confusion_matrix/v1``) from
      the metric's synced pixel counts, and ``val/confusion_matrix_image``: the row-normalised
      matrix drawn by :func:`segkit.viz.confusion_matrix` (readable offline and for many classes).

    Rank zero only. W&B masks hold ids 0-254 (PNG "L" mode): with more classes the images are
    logged without masks.

    Args:
        num_images: validation samples shown.
        per_class_table, confusion_chart, confusion_image: switch the other items on or off.
    """

    def __init__(
        self,
        num_images: int = 8,
        per_class_table: bool = True,
        confusion_chart: bool = True,
        confusion_image: bool = True,
    ) -> None:
        self.num_images = num_images
        self.per_class_table = per_class_table
        self.confusion_chart = confusion_chart
        self.confusion_image = confusion_image
        self._batch: dict[str, Any] | None = None

    @staticmethod
    def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
        """The trainer's first :class:`WandbLogger`, or None."""
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = self.wandb_logger(trainer)
        if logger is None or trainer.sanity_checking:
            return
        import wandb

        model = pl_module.model
        names = list(model.class_names or [])
        if "seg" in model.heads and not names:
            names = [str(i) for i in range(model.heads["seg"].num_classes)]
        payload: dict[str, Any] = {}
        if self._batch is None and self.num_images > 0:
            self._batch = fixed_validation_batch(trainer, self.num_images)
        if self._batch is not None:
            samples = predict_samples(model, self._batch)
            payload["val/samples"] = [
                im for s in samples for im in self._images(s, names, model.ignore_index)
            ]
        results = getattr(pl_module, "results", {}).get("val", {})
        if self.per_class_table and "IoU" in results:
            rows = [
                [name, *(_number(results[c][i]) for c in TABLE_COLUMNS)]
                for i, name in enumerate(names)
            ]
            payload["val/per_class"] = wandb.Table(columns=["class", *TABLE_COLUMNS], data=rows)
        confmat = results.get("confmat")
        if confmat is not None and self.confusion_chart:
            counts = confmat.tolist()
            table = wandb.Table(
                columns=["Actual", "Predicted", "nPredictions"],
                data=[
                    [names[i], names[j], counts[i][j]]
                    for i in range(len(names))
                    for j in range(len(names))
                ],
            )
            # What wandb.plot.confusion_matrix builds from per-sample labels, from our pixel
            # counts (that function wants one label per pixel: billions of list entries).
            payload["val/confusion_matrix"] = wandb.plot_table(
                "wandb/confusion_matrix/v1",
                table,
                {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                {"title": f"validation confusion matrix (pixels), step {trainer.global_step}"},
            )
        if confmat is not None and self.confusion_image:
            fig = confusion_matrix(confmat, names, normalize="true")
            payload["val/confusion_matrix_image"] = wandb.Image(
                figure_to_array(fig), caption="rows: ground truth (sum to 1); columns: prediction"
            )
        if payload:
            logger.experiment.log({**payload, "trainer/global_step": trainer.global_step})

    def _images(self, s: SamplePrediction, names: list[str], ignore_index: int) -> list[Any]:
        """The sample with its masks (segmentation head) and/or its depth panels (depth head)."""
        import wandb

        caption = f"val sample {s.index}"
        images = []
        if s.mask is not None and s.pred is not None:
            if len(names) < 255:
                labels = dict(enumerate(names))
                truth = np.where(s.mask == ignore_index, 255, s.mask).astype(np.uint8)
                masks = {
                    "predictions": {"mask_data": s.pred.astype(np.uint8), "class_labels": labels},
                    "ground_truth": {"mask_data": truth, "class_labels": {**labels, 255: "ignore"}},
                }
                images.append(wandb.Image(s.image, caption=caption, masks=masks))
            else:
                rank_zero_warn("WandbValidation: W&B masks hold ids < 255; logged without masks")
                images.append(wandb.Image(s.image, caption=caption))
        if depth := s.depth_panels():
            panels = [s.image, *depth]
            caption += " | image, ground-truth depth, predicted depth"
            images.append(wandb.Image(np.concatenate(panels, axis=1), caption=caption))
        return images or [wandb.Image(s.image, caption=caption)]


def _number(value: Any) -> float | None:
    v = float(value)
    return None if math.isnan(v) else v
