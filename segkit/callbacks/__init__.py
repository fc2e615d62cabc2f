"""Lightning callbacks."""

from segkit.callbacks.class_table import ClassTable, format_table
from segkit.callbacks.progress import progress_bar

__all__ = ["ClassTable", "format_table", "progress_bar"]
