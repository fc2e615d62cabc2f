"""Learning-rate schedules stepped per iteration."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["PolyWarmup", "poly_warmup"]


class PolyWarmup:
    """Factor of the base learning rate at step ``t``: linear warm-up from ``warmup_ratio`` over
    ``warmup_steps``, then ``(1 - progress) ** power`` decay towards ``min_lr_ratio`` at
    ``total_steps`` (MMSegmentation's ``LinearLR`` + ``PolyLR(eta_min)``).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` can save it.
    """

    def __init__(
        self,
        total_steps: int,
        power: float = 1.0,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-6,
        min_lr_ratio: float = 0.0,
    ) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.power = power
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return (1 - self.min_lr_ratio) * (1 - progress) ** self.power + self.min_lr_ratio


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
