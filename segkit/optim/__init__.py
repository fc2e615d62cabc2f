"""Optimisation: parameter-group rules and learning-rate schedules."""

from segkit.optim.param_groups import param_groups
from segkit.optim.schedules import CosineWarmup, PolyWarmup, cosine_warmup, poly_warmup

__all__ = ["CosineWarmup", "PolyWarmup", "cosine_warmup", "param_groups", "poly_warmup"]
