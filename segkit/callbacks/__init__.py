"""Lightning callbacks."""

from segkit.callbacks.class_table import ClassTable, format_table
from segkit.callbacks.confusion import SaveConfusionMatrix
from segkit.callbacks.progress import PlainProgressBar, RichIterationProgressBar, progress_bar
from segkit.callbacks.step_seed import StepSeed
from segkit.callbacks.visualize import SaveSamples
from segkit.callbacks.wandb_media import WandbValidation

__all__ = [
    "ClassTable",
    "PlainProgressBar",
    "RichIterationProgressBar",
    "SaveConfusionMatrix",
    "SaveSamples",
    "StepSeed",
    "WandbValidation",
    "format_table",
    "progress_bar",
]
