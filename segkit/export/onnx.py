"""ONNX export of a :class:`~segkit.export.graph.SegmentationGraph`, metadata included."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from segkit.export.graph import SegmentationGraph, export_mode
from segkit.export.metadata import ExportMetadata
from segkit.models import Segmentor

__all__ = ["EXPORTERS", "export_onnx"]

# "torchscript": torch.onnx.export(dynamo=False), tracing; "dynamo": torch.export + onnxscript.
# Both give the same numbers where both work; torchscript is the default because it exported
# as many configs and is 5-15x faster here (docs/deployment.md has the measurements).
EXPORTERS = ("torchscript", "dynamo")


def export_onnx(
    model: Segmentor,
    path: str | Path,
    config: Mapping[str, Any] | None = None,
    opset: int = 18,
    exporter: str = "torchscript",
    example_size: Sequence[int] = (128, 128),
) -> ExportMetadata:
    """Write ``model`` (eval mode) to ``path`` as ONNX: input ``images`` ``(N, 3, H, W)`` uint8,
    outputs as :class:`SegmentationGraph`, batch/height/width dynamic.

    Args:
        model: the segmentor; open-vocabulary models are exported with their current classes.
        path: the ``.onnx`` file to write.
        config: the model's resolved config, stored in the metadata (``None``: not stored).
        opset: the ONNX opset version.
        exporter: ``"torchscript"`` or ``"dynamo"`` (:data:`EXPORTERS`).
        example_size: ``(H, W)`` of the example images the graph is traced with (batch 2).

    Returns:
        The metadata written into the file's ``metadata_props``.
    """
    try:
        import onnx
    except ImportError as err:
        raise ImportError(
            "ONNX export needs onnx and onnxscript: pip install segkit[export]"
        ) from err
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    graph = SegmentationGraph(model).eval()
    example = torch.randint(0, 256, (2, 3, *example_size), dtype=torch.uint8)
    names = graph.output_names
    with warnings.catch_warnings(), export_mode():
        # Tracer warnings flag Python values frozen into the graph; the parity check at a
        # second size is what tells whether one mattered.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        if exporter == "dynamo":
            auto = torch.export.Dim.AUTO
            program = torch.onnx.export(
                graph,
                (example,),
                input_names=["images"],
                output_names=names,
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=({0: auto, 2: auto, 3: auto},),
                verbose=False,
            )
            proto = program.model_proto
        else:
            axes = {"images": {0: "batch", 2: "height", 3: "width"}}
            for name in names:
                axes[name] = (
                    {0: "batch", 1: "height", 2: "width"}
                    if name == "labels"
                    else {0: "batch", 2: "height", 3: "width"}
                )
            buffer = io.BytesIO()
            torch.onnx.export(
                graph,
                (example,),
                buffer,
                input_names=["images"],
                output_names=names,
                opset_version=opset,
                dynamic_axes=axes,
                dynamo=False,
            )
            proto = onnx.load_from_string(buffer.getvalue())
    metadata = ExportMetadata.of(graph, config, f"onnx/{exporter}", opset)
    del proto.metadata_props[:]
    for key, value in metadata.to_strings().items():
        proto.metadata_props.add(key=key, value=value)
    path = Path(path)
    onnx.save(proto, path)
    return metadata
