"""Batch augmentation on the training device with kornia (after the batch is transferred)."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import Tensor, nn

__all__ = ["DeviceAugment"]


class DeviceAugment(nn.Module):
    """Applies kornia augmentations to images and masks together, on the batch's device.

    ``transforms``: kornia augmentation modules (from YAML, e.g.
    ``kornia.augmentation.RandomHorizontalFlip``). Geometric ones move the mask with the image
    (nearest-neighbour, new pixels get the ignore index); intensity ones leave the mask alone.
    Images are ``(N, 3, H, W)`` float in 0-255, masks ``(N, H, W)`` int64.
    """

    def __init__(self, transforms: Sequence[nn.Module], ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.pipeline = K.AugmentationSequential(*transforms, data_keys=["input", "mask"])

    def forward(self, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        # Shift labels by one so that pixels created by a geometric transform (zeros) can be
        # told apart from class 0, then map them to the ignore index.
        shifted = (masks + 1).unsqueeze(1).float()
        images, shifted = self.pipeline(images / 255.0, shifted)
        labels = shifted.squeeze(1).round().long() - 1
        labels = torch.where(labels < 0, torch.full_like(labels, self.ignore_index), labels)
        return images * 255.0, labels
