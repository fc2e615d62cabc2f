"""Optimisation: parameter-group rules and learning-rate schedules."""

from segkit.optim.param_groups import param_groups
from segkit.optim.schedules import PolyWarmup, poly_warmup

__all__ = ["PolyWarmup", "param_groups", "poly_warmup"]
