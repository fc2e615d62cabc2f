"""SegmentationTask: the Lightning training / evaluation logic around a :class:`Segmentor`.

The model's heads decide what is evaluated: a ``seg`` head gets :class:`SegMetrics` (mIoU, ...),
a ``depth`` head :class:`DepthMetrics` (AbsRel, d1, ...); a joint model gets both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.optim import Optimizer

from segkit.metrics import SegMetrics
from segkit.models import Segmentor
from segkit.optim import param_groups
from segkit.optim.param_groups import describe

__all__ = ["SegmentationTask"]


class SegmentationTask(L.LightningModule):
    """Trains and evaluates a :class:`~segkit.models.Segmentor`.

    Args:
        model: the segmentor (its heads own the losses).
        optimizer: a factory ``optimizer(param_groups, lr=, weight_decay=)`` (Hydra ``_partial_``).
        lr, weight_decay: base values; ``param_groups`` rules scale them per parameter.
        param_groups: keyword arguments of :func:`segkit.optim.param_groups` besides ``lr`` and
            ``weight_decay`` (``lr_mult``, ``decay_mult``, ``norm_decay_mult``, ...).
        scheduler: a factory ``scheduler(optimizer, total_steps=)`` stepped every iteration.
        augment: optional on-device batch augmentation ``(images, masks, depth) -> (images,
            masks, depth)``, masks or depth None when the batch has none (e.g.
            :class:`segkit.data.device_augment.DeviceAugment` with kornia transforms).
        run_config: the resolved run configuration as plain data, saved in every checkpoint so that
            ``segkit.load`` and ``segkit-eval`` rebuild everything from the file alone.
        unseen_classes: names or ids of the classes held out of training (a zero-shot split):
            the metrics add ``mIoU_seen``, ``mIoU_unseen`` and their harmonic mean ``hIoU``.
        depth_metrics: keyword arguments of :class:`~segkit.metrics.DepthMetrics` for a model
            with a ``depth`` head (``min_depth``, ``max_depth``, ``crop``).
    """

    def __init__(
        self,
        model: Segmentor,
        optimizer: Callable[..., Optimizer],
        lr: float,
        weight_decay: float = 0.0,
        param_groups: Mapping[str, Any] | None = None,
        scheduler: Callable[..., Any] | None = None,
        augment: nn.Module | None = None,
        run_config: Mapping[str, Any] | None = None,
        unseen_classes: Sequence[int | str] | None = None,
        depth_metrics: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.param_group_rules = dict(param_groups or {})
        self.scheduler_factory = scheduler
        self.augment = augment
        self.run_config = run_config
        self.unseen_classes = list(unseen_classes) if unseen_classes else None
        self.depth_metric_options = dict(depth_metrics or {})
        self.has_seg = "seg" in model.heads
        self.has_depth = "depth" in model.heads
        stages = ("val", "test")
        self.metrics = nn.ModuleDict({s: self._new_metric() for s in stages if self.has_seg})
        self.depth_metrics = nn.ModuleDict(
            {s: self._new_depth_metric() for s in stages if self.has_depth}
        )
        self.results: dict[str, dict[str, Tensor]] = {}
        self.eval_names: list[str] = []

    def setup(self, stage: str) -> None:
        # A datamodule with several evaluation sets (a dataset mix) gets metrics per set besides
        # the metrics over all of them.
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        names = list(getattr(datamodule, "eval_names", None) or [])
        self.eval_names = names if len(names) > 1 else []
        for stage_name in ("val", "test"):
            for name in self.eval_names:
                key = f"{stage_name}_{name}"
                if self.has_seg and key not in self.metrics:
                    self.metrics[key] = self._new_metric().to(self.device)
                if self.has_depth and key not in self.depth_metrics:
                    self.depth_metrics[key] = self._new_depth_metric().to(self.device)

    def _new_metric(self) -> SegMetrics:
        return SegMetrics(
            self.model.heads["seg"].num_classes,
            self.model.ignore_index,
            self.model.class_names,
            unseen_classes=self.unseen_classes,
        )

    def _new_depth_metric(self) -> nn.Module:
        from segkit.metrics import DepthMetrics

        return DepthMetrics(**self.depth_metric_options)

    # ------------------------------------------------------------------ steps
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch["image"] = batch["image"].float()
        if self.training and self.augment is not None and self.trainer.training:
            out = self.augment(batch["image"], batch.get("mask"), batch.get("depth"))
            for key, value in zip(("image", "mask", "depth"), out):
                if value is not None:
                    batch[key] = value
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        outputs = self.model(batch["image"])
        losses = self.model.loss(outputs, batch)
        loss = torch.stack(list(losses.values())).sum()
        n = batch["image"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def _predictions(
        self, scores: Tensor, target: Tensor, batch: dict, reduce: bool = True
    ) -> list[tuple[Tensor, Tensor]]:
        """``(prediction, target)`` pairs at the label size, un-padded: class ids from scores
        ``(N, C, H, W)`` (``reduce``), or the ``(N, H, W)`` map of a one-channel output (depth)."""
        finish = (lambda s: s.argmax(1)) if reduce else (lambda s: s[:, 0])
        shapes = {(tuple(m["img_shape"]), tuple(m["ori_shape"])) for m in batch["meta"]}
        if len(shapes) == 1 and (img := next(iter(shapes)))[0] == img[1] == tuple(target.shape[1:]):
            return [(finish(scores), target)]  # one size, nothing to un-pad
        pairs = []
        for i, meta in enumerate(batch["meta"]):
            h, w = meta["img_shape"]
            oh, ow = meta["ori_shape"]
            s = scores[i : i + 1, :, :h, :w]
            if (h, w) != (oh, ow):
                s = F.interpolate(s, size=(oh, ow), mode="bilinear", align_corners=False)
            pairs.append((finish(s), target[i : i + 1, :oh, :ow]))
        return pairs

    def _eval_step(self, batch: dict, stage: str, dataloader_idx: int = 0) -> None:
        keys = [stage] + ([f"{stage}_{self.eval_names[dataloader_idx]}"] if self.eval_names else [])
        outputs = self.model.inference(batch["image"])
        if self.has_seg and "mask" in batch:
            for prediction, target in self._predictions(outputs["seg"], batch["mask"], batch):
                for key in keys:
                    self.metrics[key].update(prediction, target)
        if self.has_depth and "depth" in batch:
            pairs = self._predictions(outputs["depth"], batch["depth"], batch, reduce=False)
            for prediction, target in pairs:
                for key in keys:
                    self.depth_metrics[key].update(prediction, target)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "test", dataloader_idx)

    def _eval_epoch_end(self, stage: str) -> None:
        self._log_metric(stage, stage, prog_bar=True)
        for name in self.eval_names:
            self._log_metric(f"{stage}_{name}", f"{stage}/{name}", prog_bar=False)

    def _log_metric(self, key: str, prefix: str, prog_bar: bool) -> None:
        if self.has_depth:
            self._log_depth_metric(key, prefix, prog_bar)
        if self.has_seg:
            self._log_seg_metric(key, prefix, prog_bar and not self.has_depth)

    def _log_depth_metric(self, key: str, prefix: str, prog_bar: bool) -> None:
        metric = self.depth_metrics[key]
        values = metric.compute()
        metric.reset()
        self.results.setdefault(prefix, {}).update({k: v.detach().cpu() for k, v in values.items()})
        for name, value in values.items():
            self.log(
                f"{prefix}/{name}",
                value,
                prog_bar=prog_bar and name in ("AbsRel", "d1"),
                sync_dist=False,  # synced by the metric
                add_dataloader_idx=False,
            )

    def _log_seg_metric(self, key: str, prefix: str, prog_bar: bool) -> None:
        metric = self.metrics[key]
        values = metric.compute()
        metric.reset()
        self.results.setdefault(prefix, {}).update({k: v.detach().cpu() for k, v in values.items()})
        scalars = {f"{prefix}/{k}": v for k, v in values.items() if v.ndim == 0 and k != "mIoU"}
        names = self.model.class_names or [str(i) for i in range(len(values["IoU"]))]
        per_class = {
            f"{prefix}/IoU/{name}": torch.nan_to_num(v, nan=0.0)
            for name, v in zip(names, values["IoU"])
        }
        # Values are already synced by the metric (identical on every rank).
        self.log_dict(scalars, prog_bar=False, sync_dist=False, add_dataloader_idx=False)
        self.log(
            f"{prefix}/mIoU",
            values["mIoU"],
            prog_bar=prog_bar,
            sync_dist=False,
            add_dataloader_idx=False,
        )
        self.log_dict(per_class, sync_dist=False, add_dataloader_idx=False)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(self.model, self.lr, self.weight_decay, **self.param_group_rules)
        rank_zero_info("parameter groups:\n" + describe(groups))
        optimizer = self.optimizer_factory(groups, lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is None:
            return
        checkpoint["segkit"] = {"config": self.run_config, "format": 1}
        # The W&B run to continue when training resumes from this file (segkit-train reads it).
        run_id = next(
            (lg.version for lg in self.loggers if isinstance(lg, WandbLogger) and lg.version),
            None,
        )
        if run_id is not None:
            checkpoint["segkit"]["wandb_run_id"] = str(run_id)
