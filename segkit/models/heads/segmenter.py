"""Segmenter's mask transformer head (Strudel et al., "Segmenter: Transformer for Semantic
Segmentation", ICCV 2021), as MMSegmentation's ``SegmenterMaskTransformerHead``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from segkit.models.heads.seg_head import segmentation_losses
from segkit.models.losses import CrossEntropyLoss


class SegmenterMaskHead(nn.Module):
    """Patch tokens and ``num_classes`` learned class embeddings go through ``num_layers``
    transformer blocks; the class masks are the scalar products of the L2-normalised, projected
    patch and class tokens, normalised by a LayerNorm over the classes.

    Args:
        in_channels: channels of the decoded map (the ViT width).
        num_classes: number of classes (one embedding each).
        num_layers, num_heads, embed_dims, mlp_ratio: the transformer blocks.
        drop_path_rate: stochastic depth, increasing linearly to this value over the blocks.
        losses: loss modules on the masks upsampled to the label size.
        target_key: the batch entry holding the label map.

    ``forward``: ``(N, in_channels, h, w)`` -> class masks ``(N, num_classes, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_layers: int = 2,
        num_heads: int = 12,
        embed_dims: int = 768,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        losses: Sequence[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.target_key = target_key
        self.dec_proj = nn.Linear(in_channels, embed_dims)
        rates = [drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]
        # timm blocks with MMSegmentation's head settings: qkv bias, LayerNorm eps 1e-5
        block = partial(Block, qkv_bias=True, norm_layer=nn.LayerNorm)
        self.layers = nn.Sequential(
            *(block(embed_dims, num_heads, mlp_ratio, drop_path=r) for r in rates)
        )
        self.cls_emb = nn.Parameter(torch.zeros(1, num_classes, embed_dims))
        self.patch_proj = nn.Linear(embed_dims, embed_dims, bias=False)
        self.classes_proj = nn.Linear(embed_dims, embed_dims, bias=False)
        self.decoder_norm = nn.LayerNorm(embed_dims)
        self.mask_norm = nn.LayerNorm(num_classes)
        self.losses = nn.ModuleList(losses if losses is not None else [CrossEntropyLoss()])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        trunc_normal_(self.cls_emb, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        x = self.dec_proj(x.flatten(2).transpose(1, 2))
        x = torch.cat([x, self.cls_emb.expand(n, -1, -1)], dim=1)
        x = self.decoder_norm(self.layers(x))
        patches = F.normalize(self.patch_proj(x[:, : -self.num_classes]), dim=2)
        classes = F.normalize(self.classes_proj(x[:, -self.num_classes :]), dim=2)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))
        return masks.transpose(1, 2).reshape(n, self.num_classes, h, w)

    def loss(self, logits: Tensor, batch: dict, prefix: str = "") -> dict[str, Tensor]:
        """Per-pixel losses on the masks upsampled (bilinear) to ``batch[target_key] (N, H, W)``."""
        return segmentation_losses(logits, batch[self.target_key], self.losses, prefix)

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)
