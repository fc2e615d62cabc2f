"""What the console entry points share: where the configs are, and DDP children without Hydra."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONFIG_DIR", "run_hydra_app"]


def _config_dir() -> str:
    # conf/ is installed as the package `segkit.conf` (pyproject maps it), editable or not; when
    # segkit is imported straight from a source checkout, conf/ sits beside the package.
    try:
        return str(files("segkit.conf"))
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "conf"
        if checkout.is_dir():
            return str(checkout)
        raise


CONFIG_DIR = _config_dir()

_CHILD_CONFIG = "SEGKIT_RESOLVED_CONFIG"


def remember_for_children(config: dict[str, Any], output_dir: str | Path) -> None:
    """Write the resolved config where Lightning's DDP child processes will read it.

    Lightning starts ranks > 0 by re-running the command line. Composing the config again there
    would make a second output folder, and re-run a whole ``-m`` sweep in every child; instead
    each child reads the parent's resolved config (see :func:`run_hydra_app`).
    """
    path = Path(output_dir) / ".segkit_resolved_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(config), path)
    os.environ[_CHILD_CONFIG] = str(path)


def run_hydra_app(hydra_main: Callable[[], Any], body: Callable[[DictConfig], Any]) -> None:
    """Run ``hydra_main`` (a ``@hydra.main`` function), or, in a DDP child started by
    Lightning, ``body`` on the parent's resolved config."""
    # segkit moves batch preparation to the LightningModule on purpose (normalisation and
    # augmentation on the device); Lightning's note about it is noise in every run's log.
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    # conf/hydra/launcher/submitit_slurm.yaml replaces the plugin's config of that name (it lists
    # every field); Hydra 1.3 still matches it against the plugin's schema and calls that
    # deprecated, once per run.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*'hydra/launcher/submitit_slurm' is validated against ConfigStore"
    )
    child_config = os.environ.get(_CHILD_CONFIG)
    if child_config and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        body(OmegaConf.load(child_config))
        return
    hydra_main()
