"""Label specifications: how raw label values map to training ids, checked, never guessed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["LabelError", "LabelSpec"]

log = logging.getLogger(__name__)


class LabelError(ValueError):
    """A label map holds a value that is neither a class nor the ignore index."""


class LabelSpec:
    """The label space of a dataset.

    Args:
        num_classes: valid training ids are ``0 .. num_classes - 1``.
        ignore_index: the id of pixels without a label (excluded from losses and metrics).
        label_map: explicit ``{raw value: training id}`` entries; other raw values pass through.
        reduce_zero_label: raw 0 means "no label" and ``v`` becomes ``v - 1`` (ADE20K's
            convention, MMSegmentation's ``reduce_zero_label``); applied before ``label_map``.
        colors: for colour-coded (RGB) label maps: the ``[r, g, b]`` of each class id, in order;
            ``ignore_colors`` lists colours that mean "no label". Any other colour is an error.

    ``apply`` maps a raw label map through a lookup table and raises :class:`LabelError` naming
    the file and the values when a raw value maps to neither a class nor the ignore index.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        label_map: Mapping[int, int] | None = None,
        reduce_zero_label: bool = False,
        colors: Sequence[Sequence[int]] | None = None,
        ignore_colors: Sequence[Sequence[int]] = (),
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label_map = {int(k): int(v) for k, v in (label_map or {}).items()}
        self.reduce_zero_label = reduce_zero_label
        # Raw values of 8-bit masks go through a 256-entry table; -1 marks an invalid value.
        self._lut = np.array([self._map_value(v) for v in range(256)], dtype=np.int64)
        self.colors = [tuple(int(x) for x in c) for c in colors] if colors is not None else None
        self.ignore_colors = [tuple(int(x) for x in c) for c in ignore_colors]
        if self.colors is not None and len(self.colors) != num_classes:
            raise ValueError(f"{len(self.colors)} label colours for {num_classes} classes")

    @property
    def rgb(self) -> bool:
        """Whether label maps are colour-coded ``(H, W, 3)`` images."""
        return self.colors is not None

    def _decode_colors(self, raw: np.ndarray, source: str) -> np.ndarray:
        code = (
            (raw[..., 0].astype(np.int64) << 16) | (raw[..., 1].astype(np.int64) << 8) | raw[..., 2]
        )
        table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(self.colors or [])}
        table.update(
            {(r << 16) | (g << 8) | b: self.ignore_index for r, g, b in self.ignore_colors}
        )
        values, inverse = np.unique(code, return_inverse=True)
        unknown = [int(v) for v in values if int(v) not in table]
        if unknown:
            shown = [[(v >> 16) & 255, (v >> 8) & 255, v & 255] for v in unknown[:10]]
            raise LabelError(
                f"{source}: colours {shown} are not label colours of this dataset "
                "(data.labels.colors / data.labels.ignore_colors)"
            )
        ids = np.array([table[int(v)] for v in values], dtype=np.int64)
        return ids[inverse].reshape(raw.shape[:2]).astype(self.dtype)

    def _map_value(self, raw: int) -> int:
        v = raw
        if self.reduce_zero_label:
            v = self.ignore_index if raw == 0 else (raw - 1 if raw != self.ignore_index else raw)
        v = self.label_map.get(raw, v)
        return v if (0 <= v < self.num_classes or v == self.ignore_index) else -1

    def apply(self, raw: np.ndarray, source: str = "label map") -> np.ndarray:
        """Raw ``(H, W)`` values -> training ids ``(H, W)`` (``ignore_index`` where unlabelled),
        uint8 when every id fits (so OpenCV-based transforms accept it), else int32.
        Colour-coded maps (``colors`` given) are ``(H, W, 3)``."""
        if self.rgb:
            if raw.ndim != 3 or raw.shape[2] != 3:
                raise LabelError(
                    f"{source}: expected an RGB colour-coded label map, got {raw.shape}"
                )
            return self._decode_colors(raw, source)
        if raw.ndim != 2:
            raise LabelError(
                f"{source}: label map has shape {raw.shape}; colour-coded masks need "
                "data.labels.colors"
            )
        if raw.dtype == np.uint8:
            mapped = self._lut[raw]
        else:
            values, inverse = np.unique(raw, return_inverse=True)
            table = np.array([self._map_value(int(v)) for v in values], dtype=np.int64)
            mapped = table[inverse].reshape(raw.shape)
        if (mapped < 0).any():
            bad = sorted(int(v) for v in np.unique(raw[mapped < 0]))
            raise LabelError(
                f"{source}: label values {bad[:20]} are outside the label specification "
                f"(classes 0..{self.num_classes - 1}, ignore index {self.ignore_index}"
                f"{', reduce_zero_label' if self.reduce_zero_label else ''}"
                f"{', label_map ' + str(self.label_map) if self.label_map else ''}). "
                "Fix the file, or state the mapping with data.label_map."
            )
        return mapped.astype(self.dtype)

    @property
    def dtype(self) -> type:
        return np.uint8 if max(self.num_classes - 1, self.ignore_index) <= 255 else np.int32

    def survey(self, masks: list[np.ndarray]) -> dict[int, float]:
        """Fraction of pixels per training id over mapped ``masks``; warns when the ignore index
        dominates while some classes never appear (e.g. a 0/255 binary mask read with 255 as
        ignore: its foreground would silently vanish)."""
        total = sum(m.size for m in masks) or 1
        counts = np.bincount(
            np.concatenate(
                [np.where(m == self.ignore_index, self.num_classes, m).ravel() for m in masks]
            ),
            minlength=self.num_classes + 1,
        )
        fractions = {i: counts[i] / total for i in range(self.num_classes)}
        fractions[self.ignore_index] = counts[self.num_classes] / total
        absent = [i for i in range(self.num_classes) if counts[i] == 0]
        if absent and fractions[self.ignore_index] > 0.3:
            log.warning(
                "label check: ignore index %d covers %.0f%% of sampled pixels and classes %s never "
                "appear. If %d marks a class (e.g. the foreground of a 0/255 binary mask), map it: "
                "data.label_map={%d: 1}",
                self.ignore_index,
                100 * fractions[self.ignore_index],
                absent,
                self.ignore_index,
                self.ignore_index,
            )
        return fractions

    def __repr__(self) -> str:
        return (
            f"LabelSpec(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"label_map={self.label_map}, reduce_zero_label={self.reduce_zero_label}"
            f"{', colors=' + str(len(self.colors)) if self.colors else ''})"
        )
