"""Batch augmentation on the training device with kornia (after the batch is transferred)."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import Tensor, nn

__all__ = ["DeviceAugment"]


class DeviceAugment(nn.Module):
    """Applies kornia augmentations to images, masks and depth maps together, on the batch's
    device.

    ``transforms``: kornia augmentation modules (from YAML, e.g.
    ``kornia.augmentation.RandomHorizontalFlip``). Geometric ones move masks and depth maps with
    the image by nearest-neighbour sampling (kornia's default for mask inputs): a mask's new pixels
    (outside the source image) get ``ignore_index``, a depth map's get 0 ("no measurement"), and
    depth values are only moved, never interpolated or rescaled. Intensity ones change the image
    only.

    ``forward(images, masks=None, depth=None) -> (images, masks, depth)``: images ``(N, 3, H, W)``
    float in 0-255, masks ``(N, H, W)`` int64, depth ``(N, H, W)`` float metres (0 = invalid);
    a target given as None comes back as None.
    """

    def __init__(self, transforms: Sequence[nn.Module], ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.pipeline = K.AugmentationSequential(*transforms, data_keys=["input", "mask"])

    def forward(
        self, images: Tensor, masks: Tensor | None = None, depth: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        inputs, keys = [images / 255.0], ["input"]
        if masks is not None:
            # Shift labels by one so that pixels created by a geometric transform (zeros) can be
            # told apart from class 0, then map them to the ignore index.
            inputs.append((masks + 1).unsqueeze(1).float())
            keys.append("mask")
        if depth is not None:
            inputs.append(depth.unsqueeze(1).float())  # zeros padded in are invalid already
            keys.append("mask")
        outputs = self.pipeline(*inputs, data_keys=keys)
        if len(inputs) == 1:
            outputs = [outputs]
        out_images = outputs[0] * 255.0
        out_masks = out_depth = None
        rest = list(outputs[1:])
        if masks is not None:
            labels = rest.pop(0).squeeze(1).round().long() - 1
            out_masks = torch.where(labels < 0, torch.full_like(labels, self.ignore_index), labels)
        if depth is not None:
            out_depth = rest.pop(0).squeeze(1).to(depth.dtype)
        return out_images, out_masks, out_depth
