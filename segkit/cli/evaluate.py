"""``segkit-eval``: metrics of a checkpoint on a dataset's validation (or test) split."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segkit.api import check_targets, model_from_checkpoint, read_checkpoint
from segkit.callbacks import ClassTable
from segkit.cli._hydra import CONFIG_DIR, remember_for_children, run_hydra_app
from segkit.tasks import SegmentationTask

log = logging.getLogger("segkit.eval")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path``; returns the scalar metrics (also printed with the class table)."""
    if HydraConfig.initialized():
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        remember_for_children(config, cfg.paths.output_dir)
        cfg = OmegaConf.create(config)
    ckpt = read_checkpoint(cfg.ckpt_path)
    saved = ckpt["segkit"]["config"]
    if cfg.get("data") is not None:
        data_cfg = cfg.data
    else:  # the checkpoint's own data config: a file from elsewhere must not name arbitrary code
        check_targets(saved["data"], cfg.trust_config, where="data")
        data_cfg = OmegaConf.create(saved["data"])
    datamodule = instantiate(data_cfg)
    model = model_from_checkpoint(ckpt, trust_config=cfg.trust_config)
    if cfg.get("data") is not None:
        # Metrics count the evaluation data's labels: its own ignore value (ADE-847 and PC-459
        # ignore 65535, since 255 is a class there).
        model.ignore_index = datamodule.ignore_index
    if model.open_vocabulary and cfg.get("data") is not None:
        # An open-vocabulary model segments whatever classes the evaluation data names.
        model.set_classes(datamodule.class_names, getattr(datamodule, "palette", None))
        log.info(
            "open vocabulary: %d classes from data=%s", len(model.class_names), cfg.data.get("name")
        )
    if "seg" in model.heads and datamodule.num_classes != model.heads["seg"].num_classes:
        raise ValueError(
            f"the data has {datamodule.num_classes} classes, the model predicts "
            f"{model.heads['seg'].num_classes}"
        )
    task = SegmentationTask(
        model,
        optimizer=None,  # type: ignore[arg-type]
        lr=0.0,
        unseen_classes=cfg.get("unseen_classes"),
        depth_metrics=cfg.get("depth_metrics") or saved.get("task", {}).get("depth_metrics"),
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[ClassTable()],
        logger=False,
        enable_checkpointing=False,
        sync_batchnorm=False,  # evaluation: BatchNorm uses its running statistics
    )
    stage = cfg.get("split", "val")
    if stage == "test":
        trainer.test(task, datamodule=datamodule, verbose=False)
    else:
        trainer.validate(task, datamodule=datamodule, verbose=False)
    results = task.results["test" if stage == "test" else "val"]
    summary = {k: float(v) for k, v in results.items() if v.ndim == 0}
    if trainer.is_global_zero:
        names = model.class_names or [str(i) for i in range(len(results.get("IoU", [])))]
        per_class = {
            k: dict(zip(names, (None if math.isnan(x) else x for x in v.tolist())))
            for k, v in results.items()
            if v.ndim == 1
        }
        out = Path(cfg.paths.output_dir) / "metrics.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "checkpoint": str(cfg.ckpt_path),
                    "split": stage,
                    **summary,
                    "per_class": per_class,
                },
                indent=1,
            )
        )
        log.info("metrics written to %s", out)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    run_hydra_app(_hydra_main, evaluate)


if __name__ == "__main__":
    main()
