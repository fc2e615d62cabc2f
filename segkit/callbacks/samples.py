"""A fixed set of validation samples and the model's predictions on them, for the callbacks that
show predictions (PNG grids, W&B media): the same images at every validation, so the pictures
of successive validations compare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from segkit.viz.depth import colorize_depth

__all__ = ["SamplePrediction", "fixed_validation_batch", "predict_samples"]


@dataclass
class SamplePrediction:
    """One sample and the model's outputs, all at the label size ``(H, W)`` (``ori_shape``).

    ``image`` ``(H, W, 3)`` uint8; ``mask`` ground-truth ids ``(H, W)`` int64 (ignore index kept)
    and ``pred`` predicted ids ``(H, W)`` int64 for a segmentation head; ``depth`` ground truth
    and ``pred_depth`` ``(H, W)`` float32 metres (0: no measurement) for a depth head; ``index``:
    the sample's index in the validation dataset.
    """

    index: int
    image: np.ndarray
    mask: np.ndarray | None = None
    pred: np.ndarray | None = None
    depth: np.ndarray | None = None
    pred_depth: np.ndarray | None = None

    def depth_panels(self) -> list[np.ndarray]:
        """Ground-truth and predicted depth as RGB images on one colour scale: the range of the
        valid ground truth (of the prediction when no pixel is valid); ``[]`` without depth."""
        if self.depth is None or self.pred_depth is None:
            return []
        valid = self.depth[self.depth > 0]
        source = valid if valid.size else self.pred_depth
        lo, hi = source.min(), source.max()
        return [colorize_depth(self.depth, lo, hi), colorize_depth(self.pred_depth, lo, hi)]


def fixed_validation_batch(trainer: L.Trainer, num_samples: int) -> dict[str, Any] | None:
    """``num_samples`` samples spread evenly over the first validation dataset (always the same
    indices: ``linspace(0, len - 1, num_samples)``), collated by its loader like a validation
    batch, on the CPU, with ``batch["index"]`` the dataset indices. None without validation data.
    """
    loaders = trainer.val_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    dataset = getattr(loader, "dataset", None)
    if dataset is None or num_samples <= 0 or len(dataset) == 0:  # type: ignore[arg-type]
        return None
    n = len(dataset)  # type: ignore[arg-type]
    indices = sorted({int(i) for i in np.linspace(0, n - 1, min(num_samples, n)).round()})
    batch = loader.collate_fn([dataset[i] for i in indices])
    batch["index"] = indices
    return batch


@torch.no_grad()
def predict_samples(model: torch.nn.Module, batch: dict[str, Any]) -> list[SamplePrediction]:
    """Run ``model.inference`` (a :class:`~segkit.models.Segmentor`) on a collated ``batch``
    (on the model's device) and cut every output back to each sample's label size."""
    device = next(model.parameters()).device
    images = batch["image"].to(device).float()
    outputs = model.inference(images)
    samples = []
    for i, meta in enumerate(batch["meta"]):
        # The image and the outputs are cut to the unpadded image and resized when the data
        # resized the image only (labels kept at their original size).
        h, w = meta["img_shape"]
        size = tuple(meta.get("ori_shape") or (h, w))
        image_t = images[i : i + 1, :, :h, :w]
        out = {k: v[i : i + 1, :, :h, :w].float() for k, v in outputs.items()}
        if size != (h, w):
            image_t = F.interpolate(image_t, size=size, mode="bilinear", align_corners=False)
            out = {
                k: F.interpolate(v, size=size, mode="bilinear", align_corners=False)
                for k, v in out.items()
            }
        oh, ow = size
        sample = SamplePrediction(
            index=int(batch.get("index", range(len(batch["meta"])))[i]),
            image=image_t[0].permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy(),
        )
        if "seg" in out and "mask" in batch:
            sample.pred = out["seg"][0].argmax(0).cpu().numpy()
            sample.mask = batch["mask"][i, :oh, :ow].cpu().numpy()
        if "depth" in out and "depth" in batch:
            sample.pred_depth = out["depth"][0, 0].cpu().numpy()
            sample.depth = batch["depth"][i, :oh, :ow].float().cpu().numpy()
        samples.append(sample)
    return samples
