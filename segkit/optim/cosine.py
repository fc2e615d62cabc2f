"""Cosine learning-rate schedule with an optional linear warm-up, stepped per iteration."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["CosineWarmup", "cosine_warmup"]


class CosineWarmup:
    """Factor of the base learning rate at step ``t``: linear warm-up from ``warmup_ratio`` over
    ``warmup_steps``, then a half cosine from 1 to ``min_lr_ratio`` at ``total_steps``
    (detectron2's ``WarmupCosineLR`` with linear warm-up; mmengine's ``CosineAnnealingLR``).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` can save it.
    """

    def __init__(
        self,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-3,
        min_lr_ratio: float = 0.0,
    ) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine


def cosine_warmup(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 1e-3,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` following :class:`CosineWarmup`; ``total_steps`` is filled in by the task
    from the trainer (``max_steps`` or epochs x batches)."""
    return LambdaLR(optimizer, CosineWarmup(total_steps, warmup_steps, warmup_ratio, min_lr_ratio))
