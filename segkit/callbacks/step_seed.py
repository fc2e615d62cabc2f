"""Per-step seeding of the model-side random numbers (dropout, drop-path, device augmentation)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

__all__ = ["StepSeed"]


class StepSeed(L.Callback):
    """Seeds torch's global generator from ``(seed, global_step, rank)`` before each training step.

    Lightning checkpoints do not hold generator states, and the generators are consumed in
    between steps (loader start-up, validation); re-seeding per step makes the random numbers of
    step ``t`` the same in an uninterrupted and a resumed run, on every device.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step, rank, world = trainer.global_step, trainer.global_rank, trainer.world_size
        torch.manual_seed((self.seed * 1_000_003 + step * world + rank) % (2**63 - 1))
