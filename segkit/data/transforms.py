"""Albumentations transforms that albumentations lacks in MMSegmentation's exact form.

Pipelines themselves are plain ``albumentations.Compose`` nodes written in the data YAML; these two
classes reproduce MMSegmentation's ``RandomResize(keep_ratio=True)`` and ``RandomCrop`` with
``cat_max_ratio``, which have no equivalent there (``A.RandomScale`` scales relative to the
current size, ``A.RandomCrop`` cannot reject crops dominated by one class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

__all__ = ["CatMaxRandomCrop", "Rescale"]


class Rescale(A.DualTransform):
    """Keep-ratio resize so that the long and short edges fit ``scale=(long, short)``, after
    multiplying ``scale`` by a factor drawn from ``ratio_range`` (none: deterministic).

    The image is resized bilinearly, the mask with nearest neighbour.
    """

    def __init__(
        self,
        scale: Sequence[int],
        ratio_range: Sequence[float] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.scale = tuple(int(s) for s in scale)
        self.ratio_range = tuple(ratio_range) if ratio_range is not None else None

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        h, w = params["shape"][:2]
        ratio = self.py_random.uniform(*self.ratio_range) if self.ratio_range else 1.0
        long_edge, short_edge = max(self.scale) * ratio, min(self.scale) * ratio
        factor = min(long_edge / max(h, w), short_edge / min(h, w))
        return {"size": (int(h * factor + 0.5), int(w * factor + 0.5))}

    def apply(self, img: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "ratio_range")


class CatMaxRandomCrop(A.DualTransform):
    """Random ``height x width`` crop (the whole side where the input is smaller) re-drawn up to
    10 times while one class covers more than ``cat_max_ratio`` of the labelled pixels."""

    def __init__(
        self,
        height: int,
        width: int,
        cat_max_ratio: float = 1.0,
        ignore_index: int = 255,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.height, self.width = height, width
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index

    def _draw(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = min(self.height, h), min(self.width, w)
        y = self.py_random.randint(0, h - ch)
        x = self.py_random.randint(0, w - cw)
        return y, x, ch, cw

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        h, w = params["shape"][:2]
        box = self._draw(h, w)
        mask = data.get("mask")
        if self.cat_max_ratio < 1.0 and mask is not None:
            for _ in range(10):
                y, x, ch, cw = box
                crop = mask[y : y + ch, x : x + cw]
                counts = np.bincount(crop.ravel().astype(np.int64))
                if self.ignore_index < len(counts):
                    counts[self.ignore_index] = 0
                counts = counts[counts > 0]
                if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                    break
                box = self._draw(h, w)
        return {"box": box}

    def apply(self, img: np.ndarray, box: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        y, x, ch, cw = box
        return np.ascontiguousarray(img[y : y + ch, x : x + cw])

    def apply_to_mask(
        self, mask: np.ndarray, box: tuple[int, int, int, int], **params: Any
    ) -> np.ndarray:
        y, x, ch, cw = box
        return np.ascontiguousarray(mask[y : y + ch, x : x + cw])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "cat_max_ratio", "ignore_index")
