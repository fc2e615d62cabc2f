"""Linear warm-up then step decay, stepped per iteration (MMSegmentation's ``LinearLR`` +
``MultiStepLR``, as in K-Net's recipes)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["StepWarmup", "step_warmup"]


class StepWarmup:
    """Factor of the base learning rate at step ``t``: linear from ``warmup_ratio`` to 1 over
    ``warmup_steps``, then ``gamma ** k`` after ``k`` of the ``milestones``, which count from the
    end of the warm-up (mmengine's ``MultiStepLR(begin=warmup_steps)``: milestones 60k, 72k after a
    1k warm-up decay at steps 61k and 73k).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` can save it.
    """

    def __init__(
        self,
        milestones: Sequence[int],
        gamma: float = 0.1,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-3,
    ) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = warmup_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_steps
        return self.gamma ** bisect_right(self.milestones, step - self.warmup_steps)


def step_warmup(
    optimizer: Optimizer,
    total_steps: int,
    milestones: Sequence[int],
    gamma: float = 0.1,
    warmup_steps: int = 0,
    warmup_ratio: float = 1e-3,
) -> LambdaLR:
    """A ``LambdaLR`` following :class:`StepWarmup`; ``total_steps`` (given by the task) is
    unused: the milestones are absolute."""
    return LambdaLR(optimizer, StepWarmup(milestones, gamma, warmup_steps, warmup_ratio))
