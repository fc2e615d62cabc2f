"""Batching samples of different sizes: pad per batch, remember each sample's own size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["SegCollate", "unpad"]


class SegCollate:
    """Collates ``{"image": (H, W, 3) uint8, "mask": (H', W'), "depth": (H', W'), "meta": dict}``
    samples; ``mask`` and ``depth`` are each optional (a depth-only dataset has no mask).

    Images are padded at the bottom/right to the largest size in the batch (rounded up to
    ``size_divisor``) with ``pad_value`` and stacked as ``(N, 3, H, W)`` uint8; masks likewise with
    ``ignore_index`` as ``(N, H', W')`` int64; depth maps (metres) with 0, "no measurement", as
    ``(N, H', W')`` float32. A target that only some samples of the batch carry (a mix of
    segmentation-only and depth-only datasets) is filled for the others with an all-ignored map
    (mask) or an all-zero one (depth) of their ``meta["ori_shape"]`` (else their image size),
    so it contributes to no loss or metric; a target no sample carries is left out. Each ``meta``
    gains ``img_shape`` (the image size before padding); ``meta["ori_shape"]`` is the label size
    predictions are compared at.
    """

    def __init__(self, ignore_index: int = 255, size_divisor: int = 1, pad_value: int = 0) -> None:
        self.ignore_index = ignore_index
        self.size_divisor = size_divisor
        self.pad_value = pad_value

    def _padded(self, arrays: Sequence[np.ndarray], value: float, dtype: torch.dtype) -> Tensor:
        d = self.size_divisor
        h = -(-max(a.shape[0] for a in arrays) // d) * d
        w = -(-max(a.shape[1] for a in arrays) // d) * d
        out = torch.full((len(arrays), h, w, *arrays[0].shape[2:]), value, dtype=dtype)
        for i, a in enumerate(arrays):
            out[i, : a.shape[0], : a.shape[1]] = torch.from_numpy(np.ascontiguousarray(a))
        return out

    @staticmethod
    def _targets(
        samples: Sequence[dict[str, Any]], key: str, fill: float, dtype: type
    ) -> list[np.ndarray] | None:
        """Each sample's ``key`` as ``dtype``; a sample without it gets a ``fill`` map of its
        label size. None when no sample has ``key``."""
        if not any(key in s for s in samples):
            return None
        out = []
        for s in samples:
            if key in s:
                out.append(np.asarray(s[key]).astype(dtype, copy=False))
            else:
                shape = s.get("meta", {}).get("ori_shape") or s["image"].shape[:2]
                out.append(np.full(tuple(shape), fill, dtype))
        return out

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        images = [s["image"] for s in samples]
        batch: dict[str, Any] = {
            "image": self._padded(images, self.pad_value, torch.uint8).permute(0, 3, 1, 2),
            "meta": [
                {**s.get("meta", {}), "img_shape": tuple(im.shape[:2])}
                for s, im in zip(samples, images)
            ],
        }
        masks = self._targets(samples, "mask", self.ignore_index, np.int64)
        if masks is not None:
            batch["mask"] = self._padded(masks, self.ignore_index, torch.int64)
        depths = self._targets(samples, "depth", 0.0, np.float32)
        if depths is not None:
            batch["depth"] = self._padded(depths, 0.0, torch.float32)
        return batch


def unpad(output: Tensor, img_shape: Sequence[int]) -> Tensor:
    """Cut one sample's ``(C, H, W)`` output back to its unpadded ``img_shape``."""
    return output[:, : img_shape[0], : img_shape[1]]
