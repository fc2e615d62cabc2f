"""MaskFormer head: a DETR transformer decoder on the coarsest encoder map whose queries each
predict a class and a mask (Cheng et al., Per-Pixel Classification is Not All You Need for
Semantic Segmentation, NeurIPS 2021), with MMSegmentation's ``MaskFormerHead`` parameter names."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from segkit.models.decoders.mask2former import MaskFeatures
from segkit.models.detr_layers import DetrDecoderLayer, SinePositionalEncoding
from segkit.models.heads.mask2former import MaskClassificationHead, semantic_inference
from segkit.models.heads.mask_matching import MaskClassificationLoss

__all__ = ["MaskFormerHead"]


class _TransformerDecoder(nn.Module):
    """Decoder layers plus the LayerNorm applied to every layer's output."""

    def __init__(
        self, num_layers: int, embed_dims: int, num_heads: int, ffn_channels: int, dropout: float
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DetrDecoderLayer(embed_dims, num_heads, ffn_channels, dropout)
            for _ in range(num_layers)
        )
        self.post_norm = nn.LayerNorm(embed_dims)


class MaskFormerHead(MaskClassificationHead):
    """Queries cross-attend to the coarsest encoder map (projected to ``embed_dims``); every
    layer's queries give class logits and, with the pixel decoder's embeddings, mask logits.

    Args:
        in_channels: width of the coarsest encoder map (given by the segmentor).
        num_classes: classes (the head adds "no object").
        embed_dims: transformer width (256).
        num_queries: queries (100).
        num_layers: decoder layers (6).
        num_heads: attention heads (8).
        ffn_channels: FFN width (2048).
        dropout: attention and FFN dropout (0.1).
        mask_channels: width of the pixel decoder's mask embeddings (256).
        ignore_index: unlabelled pixels in the training labels.
        loss: keyword arguments of :class:`MaskClassificationLoss` (MaskFormer: focal mask loss
            on full-resolution masks, weights 1 / 20 / 1).
        target_key: the batch entry holding the label map.

    ``forward(MaskFeatures)``: in training ``{"cls": [(N, Q, C+1)] * layers, "masks":
    [(N, Q, h, w)] * layers}``; in eval the class scores ``(N, C, H, W)`` of the last layer at
    stride 1 (mask logits upsampled by the mask map's stride before the sigmoid, as MMSegmentation).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        embed_dims: int = 256,
        num_queries: int = 100,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_channels: int = 2048,
        dropout: float = 0.1,
        mask_channels: int = 256,
        ignore_index: int = 255,
        loss: dict[str, Any] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes, self.num_queries = num_classes, num_queries
        self.target_key = target_key
        self.transformer_decoder = _TransformerDecoder(
            num_layers, embed_dims, num_heads, ffn_channels, dropout
        )
        # MMDetection projects the memory whenever its width differs from the decoder's
        self.decoder_input_proj = (
            nn.Conv2d(in_channels, embed_dims, 1) if in_channels != embed_dims else nn.Identity()
        )
        self.position_encoding = SinePositionalEncoding(embed_dims // 2, normalize=True)
        self.query_embed = nn.Embedding(num_queries, embed_dims)
        self.cls_embed = nn.Linear(embed_dims, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(embed_dims, embed_dims),
            nn.ReLU(inplace=True),
            nn.Linear(embed_dims, embed_dims),
            nn.ReLU(inplace=True),
            nn.Linear(embed_dims, mask_channels),
        )
        defaults = dict(cls_weight=1.0, mask_weight=20.0, dice_weight=1.0, mask_loss="focal")
        defaults["num_points"] = None
        self.criterion = MaskClassificationLoss(
            num_classes, ignore_index=ignore_index, **{**defaults, **(loss or {})}
        )

    def forward(self, decoded: MaskFeatures) -> Tensor | dict[str, list[Tensor]]:
        mask_features, memory = decoded.mask, decoded.multi_scale[-1]
        n = memory.shape[0]
        no_pad = memory.new_zeros((n, *memory.shape[-2:]), dtype=torch.bool)
        pos = self.position_encoding(no_pad).to(memory.dtype).flatten(2).transpose(1, 2)
        memory = self.decoder_input_proj(memory).flatten(2).transpose(1, 2)
        query_pos = self.query_embed.weight[None].expand(n, -1, -1)
        query = torch.zeros_like(query_pos)
        all_cls, all_masks = [], []
        layers = self.transformer_decoder.layers
        for i, layer in enumerate(layers):
            query = layer(query, memory, query_pos, pos)
            if not self.training and i < len(layers) - 1:
                continue
            out = self.transformer_decoder.post_norm(query)
            all_cls.append(self.cls_embed(out))
            all_masks.append(torch.einsum("nqc,nchw->nqhw", self.mask_embed(out), mask_features))
        if self.training:
            return {"cls": all_cls, "masks": all_masks}
        return semantic_inference(all_cls[-1], all_masks[-1], decoded.stride)
