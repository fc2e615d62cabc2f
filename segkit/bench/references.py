"""Published MMSegmentation figures for segkit's recipes, read from ``docs/zoo/*.yaml``.

Each zoo entry is keyed by model config name and states the experiment that reproduces a
published recipe and that recipe's result (``published: {dataset, crop, schedule, mIoU, source}``).
The figures are data kept beside the model table (``scripts/model_table.py`` reads the same
files), never constants in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Reference", "default_zoo_dir", "load_zoo", "reference_for"]


@dataclass(frozen=True)
class Reference:
    """A published result. ``value`` is a fraction in [0, 1] (the zoo files hold percentages)."""

    value: float
    source: str
    dataset: str
    crop: str
    schedule: str


def default_zoo_dir() -> Path:
    """``docs/zoo`` of the source checkout segkit is imported from (not part of a wheel)."""
    return Path(__file__).resolve().parents[2] / "docs" / "zoo"


def load_zoo(zoo_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """``{model config name: zoo entry}`` from every ``*.yaml`` in ``zoo_dir``; each entry also
    gets ``family``, the name of its file."""
    folder = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(
            f"no model zoo files (*.yaml) in {folder}: the published figures live in segkit's "
            "docs/zoo; point suite.zoo_dir at a source checkout's docs/zoo"
        )
    entries: dict[str, dict[str, Any]] = {}
    for path in files:
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if name in entries:
                raise ValueError(f"{name} is described twice in {folder} (again in {path.name})")
            entries[name] = {**entry, "family": path.stem}
    return entries


def reference_for(
    zoo: dict[str, dict[str, Any]], model: str, experiment: str | None, metric: str
) -> Reference | None:
    """The published ``metric`` of ``model`` trained by ``experiment``, or None.

    A figure is returned only for the recipe it was published for: the zoo entry's
    ``experiment`` must be the cell's (a model trained on another dataset or schedule has no
    reference), and the entry must publish ``metric`` (e.g. ``mIoU``, ``mDice``).
    """
    entry = zoo.get(model)
    if entry is None or experiment is None or entry.get("experiment") != experiment:
        return None
    published = entry.get("published") or {}
    if published.get(metric) is None:
        return None
    return Reference(
        value=float(published[metric]) / 100,
        source=str(published.get("source", "")),
        dataset=str(published.get("dataset", "")),
        crop=str(published.get("crop", "")),
        schedule=str(published.get("schedule", "")),
    )
