"""Several folder readers read as one split (e.g. Pascal VOC's train labels plus SBD's)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = ["ConcatSplits", "Concatenation"]


class Concatenation(Dataset):
    """Built datasets read one after another, keeping the folder-reader protocol:
    ``dataset[(index, seed)]`` and :meth:`load_mask`."""

    def __init__(self, parts: Sequence[Dataset]) -> None:
        if not parts:
            raise ValueError("nothing to concatenate")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).tolist()  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``(part, index within it)`` of global ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        k = bisect.bisect_right(self.offsets, index) - 1
        return k, index - self.offsets[k]

    def load_mask(self, index: int) -> np.ndarray:
        k, i = self.locate(index)
        return self.parts[k].load_mask(i)  # type: ignore[attr-defined]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        k, i = self.locate(index)
        return self.parts[k][(i, seed) if seed is not None else i]


class ConcatSplits(Concatenation):
    """The concatenation of dataset ``parts`` (a list, or a mapping read in order), each a factory
    (a Hydra ``_partial_`` node) that this class completes with the same ``transform``,
    ``keep_original_mask`` and ``strict``. ``parts`` are then the built datasets, for per-part
    checks (``segkit-data check``).
    """

    def __init__(
        self,
        parts: Sequence[Callable[..., Dataset]] | Mapping[str, Callable[..., Dataset]],
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        strict: bool = True,
    ) -> None:
        factories = list(parts.values()) if isinstance(parts, Mapping) else list(parts)
        super().__init__(
            [
                part(transform=transform, keep_original_mask=keep_original_mask, strict=strict)
                for part in factories
            ]
        )
        self.labels = self.parts[0].labels  # type: ignore[attr-defined]
