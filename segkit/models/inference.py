"""Test-time inference strategies over any model that maps images to a dict of dense outputs.

Every function takes ``forward: images (N, 3, h, w) -> {name: (N, C, h', w')}`` and returns the
outputs resized to the input size, so they work for segmentation logits and depth maps alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

Forward = Callable[[Tensor], dict[str, Tensor]]

__all__ = [
    "InferenceConfig",
    "infer",
    "rescale_size",
    "slide_inference",
    "tta_inference",
    "whole_inference",
]


@dataclass
class InferenceConfig:
    """How a :class:`~segkit.models.Segmentor` runs at test time.

    Attributes:
        mode: ``"whole"`` (one forward per image) or ``"slide"`` (overlapping crops).
        crop_size: ``(h, w)`` of a sliding window.
        stride: ``(h, w)`` step between windows.
        crop_batch_size: windows per forward pass; bounds memory on large images.
        scales: resize factors for multi-scale test-time augmentation (``[1.0]``: none).
        flip: also run on horizontally flipped images and average.
        resize: ``(long, short)`` keep-ratio rescale applied by ``predict`` before inference
            (MMSegmentation's ``Resize(scale=..., keep_ratio=True)``); ``None`` keeps the size.
    """

    mode: str = "whole"
    crop_size: Sequence[int] | None = None
    stride: Sequence[int] | None = None
    crop_batch_size: int = 8
    scales: Sequence[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    resize: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide" and (self.crop_size is None or self.stride is None):
            raise ValueError("test_cfg.mode='slide' needs test_cfg.crop_size and test_cfg.stride")


def _resize_all(outputs: dict[str, Tensor], size: Sequence[int]) -> dict[str, Tensor]:
    return {
        k: v
        if tuple(v.shape[2:]) == tuple(size)
        else F.interpolate(v, size=tuple(size), mode="bilinear", align_corners=False)
        for k, v in outputs.items()
    }


def whole_inference(forward: Forward, images: Tensor) -> dict[str, Tensor]:
    """One forward pass on the whole batch; outputs resized to ``images``' size."""
    return _resize_all(forward(images), images.shape[2:])


def slide_inference(
    forward: Forward,
    images: Tensor,
    crop_size: Sequence[int],
    stride: Sequence[int],
    crop_batch_size: int = 8,
) -> dict[str, Tensor]:
    """Overlapping windows (placed as MMSegmentation places them), ``crop_batch_size`` windows
    per forward pass across all images of the batch; overlaps are averaged.

    Memory is the full-size accumulators plus one batch of crops, whatever the image size.
    A dimension smaller than the crop is taken whole.
    """
    n, _, h, w = images.shape
    ch, cw = min(crop_size[0], h), min(crop_size[1], w)
    sh, sw = stride
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y, x = min(r * sh, h - ch), min(c * sw, w - cw)
            windows.extend((i, y, x) for i in range(n))
    sums: dict[str, Tensor] = {}
    count = images.new_zeros((n, 1, h, w))
    for start in range(0, len(windows), crop_batch_size):
        chunk = windows[start : start + crop_batch_size]
        crops = torch.stack([images[i, :, y : y + ch, x : x + cw] for i, y, x in chunk])
        outputs = _resize_all(forward(crops), (ch, cw))
        for key, value in outputs.items():
            if key not in sums:
                sums[key] = value.new_zeros((n, value.shape[1], h, w))
            for j, (i, y, x) in enumerate(chunk):
                sums[key][i, :, y : y + ch, x : x + cw] += value[j]
        for i, y, x in chunk:
            count[i, :, y : y + ch, x : x + cw] += 1
    return {k: v / count for k, v in sums.items()}


def infer(forward: Forward, images: Tensor, cfg: InferenceConfig) -> dict[str, Tensor]:
    """Whole or sliding-window inference as ``cfg.mode`` says, without augmentation."""
    if cfg.mode == "slide":
        assert cfg.crop_size is not None and cfg.stride is not None
        return slide_inference(forward, images, cfg.crop_size, cfg.stride, cfg.crop_batch_size)
    return whole_inference(forward, images)


def tta_inference(forward: Forward, images: Tensor, cfg: InferenceConfig) -> dict[str, Tensor]:
    """Average of the outputs over ``cfg.scales`` x (identity, horizontal flip if ``cfg.flip``),
    each resized back to the input size (MMSegmentation averages logits the same way)."""
    size = images.shape[2:]
    total: dict[str, Tensor] = {}
    runs = 0
    for scale in cfg.scales:
        scaled = images
        if scale != 1.0:
            target = [max(1, math.floor(s * scale + 0.5)) for s in size]
            scaled = F.interpolate(images, size=target, mode="bilinear", align_corners=False)
        for flip in (False, True) if cfg.flip else (False,):
            x = scaled.flip(-1) if flip else scaled
            out = infer(forward, x, cfg)
            if flip:
                out = {k: v.flip(-1) for k, v in out.items()}
            for key, value in _resize_all(out, size).items():
                total[key] = total[key] + value if key in total else value
            runs += 1
    return {k: v / runs for k, v in total.items()}


def rescale_size(size: Sequence[int], scale: Sequence[int]) -> tuple[int, int]:
    """Keep-ratio target size for ``size=(h, w)`` fitted into ``scale=(long, short)`` edges
    (MMSegmentation's ``keep_ratio=True`` rule)."""
    h, w = size
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)
