"""What an exported file says about itself: the label space, outputs, config and how it was made.

The same string entries go into an ONNX file's ``metadata_props`` and a ``.pt2`` file's
``extra_files``, so either format can be opened without the checkpoint it came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segkit.export.graph import INPUT_LAYOUT, SegmentationGraph, unexported_test_cfg

__all__ = ["KEYS", "ExportMetadata", "MetadataError"]

# Every entry, as stored (strings; JSON where structured).
KEYS = (
    "segkit_version",
    "class_names",
    "palette",
    "ignore_index",
    "heads",
    "outputs",
    "model_config",
    "input_layout",
    "exporter",
    "opset",
    "open_vocabulary",
    "not_exported",
)


class MetadataError(ValueError):
    """An exported file without (complete) segkit metadata."""


@dataclass
class ExportMetadata:
    """The metadata of one exported model.

    Attributes:
        class_names: label ``i`` is ``class_names[i]`` (``None`` for depth-only models).
        palette: one RGB triple per class, or ``None``.
        ignore_index: the label value the training data used for unlabelled pixels.
        heads: the model's heads (``"seg"``, ``"depth"``).
        outputs: the graph's output names, in order.
        model_config: the model's resolved config (``_target_`` nodes), or ``None``.
        exporter: ``"torchscript"``/``"dynamo"`` (ONNX) or ``"torch.export"``.
        opset: the ONNX opset (``None`` for ``torch.export``).
        open_vocabulary: whether the model was open-vocabulary (its classes are baked in).
        not_exported: the parts of the model's test configuration the graph leaves out.
        segkit_version: the segkit that wrote the file.
        input_layout: the input contract (:data:`~segkit.export.graph.INPUT_LAYOUT`).
    """

    class_names: list[str] | None
    palette: list[list[int]] | None
    ignore_index: int
    heads: list[str]
    outputs: list[str]
    model_config: dict[str, Any] | None
    exporter: str
    opset: int | None
    open_vocabulary: bool
    not_exported: list[str]
    segkit_version: str
    input_layout: str = INPUT_LAYOUT

    @classmethod
    def of(
        cls,
        graph: SegmentationGraph,
        config: Mapping[str, Any] | None,
        exporter: str,
        opset: int | None,
    ) -> ExportMetadata:
        """The metadata of ``graph`` (built from a model whose config is ``config``)."""
        from segkit import __version__

        model = graph.model
        return cls(
            class_names=list(model.class_names) if model.class_names is not None else None,
            palette=[list(map(int, c)) for c in model.palette] if model.palette else None,
            ignore_index=int(model.ignore_index),
            heads=list(model.heads),
            outputs=list(graph.output_names),
            model_config=dict(config) if config is not None else None,
            exporter=exporter,
            opset=opset,
            open_vocabulary=graph.open_vocabulary,
            not_exported=unexported_test_cfg(model.test_cfg),
            segkit_version=__version__,
        )

    def to_strings(self) -> dict[str, str]:
        """The entries as strings (JSON for structured values), keyed by :data:`KEYS`."""
        values = {key: getattr(self, key) for key in KEYS}
        return {
            key: value if isinstance(value, str) else json.dumps(value, default=str)
            for key, value in values.items()
        }

    @classmethod
    def from_strings(cls, entries: Mapping[str, str], where: str = "file") -> ExportMetadata:
        """Parse :meth:`to_strings` output; :class:`MetadataError` names what is missing."""
        if "segkit_version" not in entries:
            raise MetadataError(
                f"{where} has no segkit metadata: it was not written by segkit-export "
                "(export a segkit checkpoint with `segkit-export ckpt_path=... format=onnx`)"
            )
        missing = [key for key in KEYS if key not in entries]
        if missing:
            raise MetadataError(f"{where}: segkit metadata incomplete, missing {missing}")
        try:
            values = {
                key: entries[key]
                if key in ("segkit_version", "input_layout", "exporter")
                else json.loads(entries[key])
                for key in KEYS
            }
        except json.JSONDecodeError as err:
            raise MetadataError(f"{where}: unreadable segkit metadata: {err}") from err
        return cls(**values)
