"""BatchNorm variants for MMSegmentation's ResNet settings, passed to timm as ``norm_layer``."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EvalBatchNorm2d", "FrozenAffineBatchNorm2d"]


class FrozenAffineBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose scale and shift are not trained (running statistics still are):
    MMSegmentation's ``norm_cfg=dict(type='SyncBN', requires_grad=False)`` (Mask2Former's ResNet)."""

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)


class EvalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always normalises with its running statistics and never updates them,
    while its scale and shift train: MMSegmentation's ResNet ``norm_eval=True`` (MaskFormer)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )
