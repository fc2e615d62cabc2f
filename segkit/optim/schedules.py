"""Learning-rate schedules stepped per iteration: linear warm-up, then poly or cosine decay."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["CosineWarmup", "PolyWarmup", "cosine_warmup", "poly_warmup"]


class _Warmup:
    """Factor of the base learning rate at step ``t``: linear warm-up from ``warmup_ratio`` over
    ``warmup_steps``, then ``min_lr_ratio + (1 - min_lr_ratio) * decay(progress)`` with
    ``progress`` going from 0 to 1 at ``total_steps``.

    Callable objects rather than closures so that ``LambdaLR.state_dict`` can save them.
    """

    def __init__(
        self, total_steps: int, warmup_steps: int, warmup_ratio: float, min_lr_ratio: float
    ) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio

    def decay(self, progress: float) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * self.decay(progress)


class PolyWarmup(_Warmup):
    """Linear warm-up, then ``(1 - progress) ** power`` decay towards ``min_lr_ratio``
    (MMSegmentation's ``LinearLR`` + ``PolyLR(eta_min)``)."""

    def __init__(
        self,
        total_steps: int,
        power: float = 1.0,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-6,
        min_lr_ratio: float = 0.0,
    ) -> None:
        super().__init__(total_steps, warmup_steps, warmup_ratio, min_lr_ratio)
        self.power = power

    def decay(self, progress: float) -> float:
        return (1 - progress) ** self.power


class CosineWarmup(_Warmup):
    """Linear warm-up, then a half cosine from 1 to ``min_lr_ratio`` (detectron2's
    ``WarmupCosineLR`` with linear warm-up; mmengine's ``CosineAnnealingLR``)."""

    def __init__(
        self,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-3,
        min_lr_ratio: float = 0.0,
    ) -> None:
        super().__init__(total_steps, warmup_steps, warmup_ratio, min_lr_ratio)

    def decay(self, progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress))


def poly_warmup(
    optimizer: Optimizer,
    total_steps: int,
    power: float = 1.0,
    warmup_steps: int = 0,
    warmup_ratio: float = 1e-6,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` following :class:`PolyWarmup`; ``total_steps`` is filled in by the task from
    the trainer (``max_steps`` or epochs x batches)."""
    return LambdaLR(
        optimizer, PolyWarmup(total_steps, power, warmup_steps, warmup_ratio, min_lr_ratio)
    )


def cosine_warmup(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 1e-3,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` following :class:`CosineWarmup`; ``total_steps`` as :func:`poly_warmup`."""
    return LambdaLR(optimizer, CosineWarmup(total_steps, warmup_steps, warmup_ratio, min_lr_ratio))
