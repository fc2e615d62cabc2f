"""Losses: ``forward(logits, target) -> scalar``, already multiplied by their ``loss_weight``."""

from segkit.models.losses.cross_entropy import CrossEntropyLoss

__all__ = ["CrossEntropyLoss"]
