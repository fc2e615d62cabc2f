"""The served model: what it predicts (snapshot taken at start-up) and its batched call."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["ModelInput", "ServedModel"]


@dataclass(frozen=True)
class ModelInput:
    """One request for the model: an ``(H, W, 3)`` uint8 RGB image and its query options."""

    image: np.ndarray
    classes: tuple[str, ...] | None = None
    threshold: float | None = None

    @property
    def key(self) -> tuple[tuple[str, ...] | None, float | None]:
        """Requests with equal keys can share one ``predict`` call."""
        return self.classes, self.threshold


class ServedModel:
    """Wraps anything with ``segkit.load``'s interface: ``predict(images, classes=, threshold=)``
    returning one dict per image (``"seg"`` ``(H, W)`` int64 labels, ``"depth"`` ``(H, W)``
    metres), and ``class_names``, ``palette``, ``open_vocabulary``.

    The class names and palette are copied now: an open-vocabulary ``predict(classes=...)``
    swaps the model's own for the duration of the call, on the batcher's thread, while other
    threads answer ``/metadata``.

    Args:
        model: a :class:`~segkit.models.Segmentor` (or an ONNX model with the same interface).
        name: the name reported in responses (e.g. the checkpoint's file name).
    """

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        self.open_vocabulary = bool(getattr(model, "open_vocabulary", False))
        names = getattr(model, "class_names", None)
        self.class_names: list[str] | None = [str(c) for c in names] if names is not None else None
        palette = getattr(model, "palette", None)
        self.palette: list[list[int]] | None = (
            [[int(v) for v in c] for c in palette] if palette is not None else None
        )
        # One warm-up call: the first call of a model is slow (allocations, lazy initialisation),
        # and its outputs name the heads whatever the backend (PyTorch or ONNX).
        warm = self.predict_batch([ModelInput(np.zeros((64, 64, 3), np.uint8))])[0]
        self.heads: list[str] = sorted(warm)

    def predict_batch(self, items: Sequence[ModelInput]) -> list[dict[str, np.ndarray]]:
        """One ``model.predict`` call for items sharing the same ``key``; each result holds
        ``"seg"`` ``(H, W)`` int64 and/or ``"depth"`` ``(H, W)`` float32 metres as numpy."""
        classes, threshold = items[0].key
        kwargs: dict[str, Any] = {}
        if classes is not None:
            kwargs["classes"] = list(classes)
        if threshold is not None:
            kwargs["threshold"] = float(threshold)
        if _accepts(self.model.predict, "batch_size"):
            kwargs["batch_size"] = len(items)  # same-size images share one forward pass
        outputs = self.model.predict([item.image for item in items], **kwargs)
        return [
            {name: _numpy(value) for name, value in out.items() if name in ("seg", "depth")}
            for out in outputs
        ]


def _accepts(function: Any, name: str) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
