"""Export a :class:`~segkit.models.Segmentor` to ONNX or ``torch.export``, checked against PyTorch.

``export_model`` writes the file and runs the parity check; ``OnnxSegmentor`` (also reached by
``segkit.load("model.onnx")``) predicts with an exported ONNX file on onnxruntime.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segkit.export.graph import INPUT_LAYOUT, SegmentationGraph, unexported_test_cfg
from segkit.export.metadata import ExportMetadata, MetadataError
from segkit.export.parity import DEFAULT_SIZES, ParityError, ParityReport, check_parity
from segkit.models import Segmentor

__all__ = [
    "DEFAULT_SIZES",
    "FORMATS",
    "INPUT_LAYOUT",
    "ExportMetadata",
    "MetadataError",
    "ParityError",
    "ParityReport",
    "SegmentationGraph",
    "check_parity",
    "export_model",
    "exported_runner",
    "unexported_test_cfg",
]

FORMATS = ("onnx", "torch_export")

log = logging.getLogger("segkit.export")


def export_model(
    model: Segmentor,
    path: str | Path,
    format: str = "onnx",
    config: Mapping[str, Any] | None = None,
    opset: int = 18,
    exporter: str = "auto",
    example_size: Sequence[int] = (128, 128),
    check_sizes: Sequence[Sequence[int]] | None = DEFAULT_SIZES,
    check_batch: int = 2,
    tolerance: float = 1e-3,
    min_label_agreement: float = 0.999,
) -> tuple[ExportMetadata, ParityReport | None]:
    """Export ``model`` (eval mode, on the CPU) to ``path`` and check the file against it.

    Args:
        format: ``"onnx"`` or ``"torch_export"`` (a ``.pt2`` file).
        config: the model's resolved config, stored in the file's metadata.
        opset, exporter: ONNX only (see :func:`segkit.export.onnx.export_onnx`); ``"auto"``:
            the TorchScript exporter, and the dynamo exporter if that fails to export or to
            pass the parity check.
        example_size: ``(H, W)`` of the example batch the graph is made from.
        check_sizes: ``(H, W)`` sizes of the parity check; ``None``/empty skips it.
        check_batch: images per size in the parity check (the graph is traced with 2).
        tolerance, min_label_agreement: see :func:`~segkit.export.parity.check_parity`.

    Returns:
        The metadata written and the parity report (``None`` if not checked).

    Raises:
        ParityError: the exported model differs from PyTorch beyond the tolerance.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    kwargs = dict(
        config=config,
        opset=opset,
        example_size=example_size,
        check_sizes=check_sizes,
        check_batch=check_batch,
        tolerance=tolerance,
        min_label_agreement=min_label_agreement,
    )
    if format == "onnx" and exporter == "auto":
        # The TorchScript exporter takes seconds where the dynamo exporter takes a minute, but
        # it cannot export some graphs with dynamic sizes (adaptive pooling to 2, 3 or 6 bins,
        # as in PSPNet's pyramid) and may freeze a size into others: the parity check catches
        # those, and the dynamo exporter gets them.
        try:
            return _export_and_check(model, Path(path), format, "torchscript", **kwargs)
        except Exception as err:  # any exporter, onnxruntime or parity failure: try the other
            first = str(err).strip().splitlines()[0][:300]
            log.warning("TorchScript ONNX exporter failed (%s); using the dynamo exporter", first)
            print(f"TorchScript ONNX exporter failed ({first}); using the dynamo exporter")
        exporter = "dynamo"
    return _export_and_check(model, Path(path), format, exporter, **kwargs)


def _export_and_check(
    model: Segmentor,
    path: Path,
    format: str,
    exporter: str,
    config: Mapping[str, Any] | None,
    opset: int,
    example_size: Sequence[int],
    check_sizes: Sequence[Sequence[int]] | None,
    check_batch: int,
    tolerance: float,
    min_label_agreement: float,
) -> tuple[ExportMetadata, ParityReport | None]:
    if format == "onnx":
        from segkit.export.onnx import export_onnx

        metadata = export_onnx(model, path, config, opset, exporter, example_size)
    else:
        from segkit.export.program import export_program

        metadata = export_program(model, path, config, example_size)
    report = None
    if check_sizes:
        report = check_parity(
            model,
            exported_runner(path),
            check_sizes,
            batch=check_batch,
            tolerance=tolerance,
            min_label_agreement=min_label_agreement,
        )
    return metadata, report


def exported_runner(path: str | Path):
    """``run(images uint8 (N, 3, H, W) ndarray) -> {output name: ndarray}`` for an exported
    file: onnxruntime on the CPU for ``.onnx``, the loaded program for ``.pt2``."""
    import torch

    path = Path(path)
    if path.suffix == ".onnx":
        from segkit.export.runtime import OnnxSegmentor

        return OnnxSegmentor(path)
    from segkit.export.program import load_program

    program, metadata = load_program(path)
    module = program.module()

    def run(images):
        with torch.no_grad():
            outputs = module(torch.from_numpy(images))
        return {n: o.numpy() for n, o in zip(metadata.outputs, outputs)}

    return run
