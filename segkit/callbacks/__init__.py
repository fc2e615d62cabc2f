"""Lightning callbacks."""

from segkit.callbacks.class_table import ClassTable, format_table
from segkit.callbacks.progress import progress_bar
from segkit.callbacks.step_seed import StepSeed
from segkit.callbacks.visualize import SaveSamples

__all__ = ["ClassTable", "SaveSamples", "StepSeed", "format_table", "progress_bar"]
