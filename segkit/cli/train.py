"""``segkit-train``: compose the config, build data, model and trainer, fit (and optionally test)."""

from __future__ import annotations

import logging
import os
import subprocess

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf

from segkit.api import read_checkpoint
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
    logger = instantiate(cfg.logger, **_continue_wandb_run(cfg)) if cfg.get("logger") else False
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

    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if cfg.get("test"):
            trainer.test(task, datamodule=datamodule, ckpt_path="best")
    except BaseException:
        _finish_wandb_run(trainer, exit_code=1)
        raise
    finally:
        _release_ddp_processes(trainer)
    _finish_wandb_run(trainer, exit_code=0)
    value = trainer.callback_metrics.get(cfg.get("optimized_metric", "val/mIoU"))
    return float(value) if value is not None else None


def _continue_wandb_run(cfg: DictConfig) -> dict[str, str]:
    """``{"id": run_id}`` when resuming (``ckpt_path``) a W&B run with ``logger.id`` null: the
    run the checkpoint recorded continues (WandbLogger passes ``resume="allow"``); else ``{}``."""
    logger_cfg, ckpt_path = cfg.logger, cfg.get("ckpt_path")
    if not ckpt_path or logger_cfg.get("id") is not None or "_target_" not in logger_cfg:
        return {}
    if not issubclass(get_class(logger_cfg._target_), WandbLogger):
        return {}
    run_id = read_checkpoint(ckpt_path)["segkit"].get("wandb_run_id")
    if not run_id:
        return {}
    log.info("continuing the W&B run %s of %s", run_id, ckpt_path)
    return {"id": run_id}


def _finish_wandb_run(trainer: L.Trainer, exit_code: int) -> None:
    """Close the W&B run now, not at interpreter exit: its files are complete when ``train``
    returns, and the next ``train`` in this process (a sweep) starts a run of its own."""
    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers) and trainer.is_global_zero:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)


def _release_ddp_processes(trainer: L.Trainer) -> None:
    """After a run whose DDP processes Lightning started (``trainer=ddp`` on one machine), leave
    this process as it was: Lightning keeps its process group and sets ``LOCAL_RANK``,
    ``MASTER_PORT``, ... in this process's environment, and would take the next run of a ``-m``
    sweep for a child process, start no processes and fail."""
    launcher = getattr(trainer.strategy, "launcher", None)
    if not isinstance(launcher, _SubprocessScriptLauncher) or not launcher.procs:
        return  # one process, or processes started by torchrun / SLURM
    for proc in launcher.procs:
        try:
            proc.wait(timeout=120)  # the children end their run and exit
        except subprocess.TimeoutExpired:
            proc.kill()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE"):
        os.environ.pop(key, None)


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
