"""Several folder readers read as one split (e.g. Pascal VOC's train labels plus SBD's)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = ["ConcatSplits"]


class ConcatSplits(Dataset):
    """The concatenation of dataset ``parts`` (a list, or a mapping read in order), each a factory (a Hydra ``_partial_`` node) that
    this class completes with the same ``transform``, ``keep_original_mask`` and ``strict``.

    Keeps the folder-reader protocol: ``dataset[(index, seed)]``, :meth:`load_mask`, ``labels``,
    and ``parts`` for per-part checks (``segkit-data check``).
    """

    def __init__(
        self,
        parts: Sequence[Callable[..., Dataset]] | Mapping[str, Callable[..., Dataset]],
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        strict: bool = True,
    ) -> None:
        factories = list(parts.values()) if isinstance(parts, Mapping) else list(parts)
        if not factories:
            raise ValueError("ConcatSplits needs at least one part")
        self.parts = [
            part(transform=transform, keep_original_mask=keep_original_mask, strict=strict)
            for part in factories
        ]
        self.labels = self.parts[0].labels  # type: ignore[attr-defined]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).tolist()  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.offsets[-1]

    def _locate(self, index: int) -> tuple[Dataset, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        k = bisect.bisect_right(self.offsets, index) - 1
        return self.parts[k], index - self.offsets[k]

    def load_mask(self, index: int) -> np.ndarray:
        part, i = self._locate(index)
        return part.load_mask(i)  # type: ignore[attr-defined]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        part, i = self._locate(index)
        return part[(i, seed) if seed is not None else i]
