"""Progress display: a rich bar on a terminal, periodic plain lines otherwise (CI, log files)."""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar

__all__ = ["progress_bar"]


def progress_bar(refresh_rate: int = 1, plain_refresh_rate: int = 50) -> ProgressBar:
    """``RichProgressBar`` when stdout is a terminal; else a TQDM bar refreshed every
    ``plain_refresh_rate`` steps, so logs stay readable."""
    if sys.stdout.isatty():
        return RichProgressBar(refresh_rate=refresh_rate)
    return TQDMProgressBar(refresh_rate=plain_refresh_rate)
