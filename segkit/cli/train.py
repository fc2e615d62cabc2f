"""``segkit-train``: compose the config, build data, model and trainer, fit (and optionally test)."""

from __future__ import annotations

import logging

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segkit.cli._hydra import CONFIG_DIR, remember_for_children, run_hydra_app

log = logging.getLogger("segkit.train")


def train(cfg: DictConfig) -> float | None:
    """Train with a composed config; returns ``cfg.optimized_metric`` for sweepers."""
    if HydraConfig.initialized():
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        remember_for_children(config, cfg.paths.output_dir)
        cfg = OmegaConf.create(config)
    else:  # a DDP child: the parent's resolved config
        config = OmegaConf.to_container(cfg, resolve=True)
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, _convert_="partial")
    task = instantiate(cfg.task, model=model, _convert_="partial")
    task.run_config = config  # not through instantiate: it would build the _target_s inside
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=logger, sync_batchnorm=_sync_batchnorm(cfg.trainer)
    )

    if trainer.is_global_zero:
        params = sum(p.numel() for p in model.parameters())
        aux = sum(p.numel() for p in model.auxiliary.parameters())
        log.info(
            "model: %s params (%s without auxiliary heads)", f"{params:,}", f"{params - aux:,}"
        )
        log.info("output folder: %s", cfg.paths.output_dir)

    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    if cfg.get("test"):
        trainer.test(task, datamodule=datamodule, ckpt_path="best")
    value = trainer.callback_metrics.get(cfg.get("optimized_metric", "val/mIoU"))
    return float(value) if value is not None else None


def _sync_batchnorm(trainer_cfg: DictConfig) -> bool:
    """``trainer.sync_batchnorm``, unless the processes run on CPUs: PyTorch's SyncBatchNorm
    supports GPU modules only, so CPU DDP (gloo) keeps per-process BatchNorm."""
    wanted = bool(trainer_cfg.get("sync_batchnorm", False))
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if wanted and not on_gpu:
        log.info("sync_batchnorm: off on CPU (PyTorch's SyncBatchNorm needs GPUs)")
    return wanted and on_gpu


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return train(cfg)


def main() -> None:
    run_hydra_app(_hydra_main, train)


if __name__ == "__main__":
    main()
