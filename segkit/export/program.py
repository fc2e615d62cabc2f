"""``torch.export`` of a :class:`~segkit.export.graph.SegmentationGraph` to a ``.pt2`` file."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from segkit.export.graph import SegmentationGraph, export_mode
from segkit.export.metadata import KEYS, ExportMetadata
from segkit.models import Segmentor

__all__ = ["export_program", "load_program"]


def export_program(
    model: Segmentor,
    path: str | Path,
    config: Mapping[str, Any] | None = None,
    example_size: Sequence[int] = (128, 128),
) -> ExportMetadata:
    """Write ``model`` (eval mode) to ``path`` as a ``torch.export`` program (``.pt2``):
    ``module()(images (N, 3, H, W) uint8)`` -> the outputs of :class:`SegmentationGraph`.

    Batch, height and width are dynamic (``Dim.AUTO``: ``torch.export`` derives their ranges,
    e.g. sizes above the network's largest stride); the example batch is 2, since an example of
    size 1 would specialise the batch dimension. The metadata goes into ``extra_files``.
    """
    graph = SegmentationGraph(model).eval()
    example = torch.randint(0, 256, (2, 3, *example_size), dtype=torch.uint8)
    auto = torch.export.Dim.AUTO
    with warnings.catch_warnings(), export_mode():
        warnings.filterwarnings("ignore", category=UserWarning)
        program = torch.export.export(
            graph, (example,), dynamic_shapes=({0: auto, 2: auto, 3: auto},)
        )
    metadata = ExportMetadata.of(graph, config, "torch.export", None)
    torch.export.save(program, path, extra_files=metadata.to_strings())
    return metadata


def load_program(path: str | Path) -> tuple[torch.export.ExportedProgram, ExportMetadata]:
    """Read a ``.pt2`` written by :func:`export_program`: the program and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported program not found: {path}")
    extra = dict.fromkeys(KEYS, "")
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as err:
        raise ValueError(
            f"cannot read {path} as a torch.export program (truncated?): {err}"
        ) from err
    return program, ExportMetadata.from_strings({k: v for k, v in extra.items() if v}, str(path))
