"""Mask2Former head: a masked-attention transformer decoder whose queries each predict a class
and a mask (Cheng et al., Masked-attention Mask Transformer for Universal Image Segmentation,
CVPR 2022), with MMSegmentation's ``Mask2FormerHead`` parameter names."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.mask2former import MaskFeatures
from segkit.models.detr_layers import Mask2FormerDecoderLayer, SinePositionalEncoding
from segkit.models.heads.mask_matching import MaskClassificationLoss

__all__ = ["Mask2FormerHead", "semantic_inference"]


def semantic_inference(cls_logits: Tensor, mask_logits: Tensor, upsample: int = 1) -> Tensor:
    """Per-class scores from query predictions, as MMSegmentation's mask-classification heads:
    ``sum_q softmax(cls)[q, c] * sigmoid(mask)[q]`` ("no object" dropped).

    ``cls_logits (N, Q, C+1)``, ``mask_logits (N, Q, h, w)`` -> ``(N, C, h * upsample,
    w * upsample)``; the mask logits are upsampled (bilinear) before the sigmoid.
    """
    if upsample != 1:
        size = (mask_logits.shape[-2] * upsample, mask_logits.shape[-1] * upsample)
        mask_logits = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
    probs = cls_logits.softmax(-1)[..., :-1]
    return torch.einsum("nqc,nqhw->nchw", probs, mask_logits.sigmoid())


class MaskClassificationHead(nn.Module):
    """What MaskFormer-style heads share: in training ``forward`` returns every layer's
    ``{"cls": [...], "masks": [...]}``, which ``criterion`` (a
    :class:`~segkit.models.heads.mask_matching.MaskClassificationLoss`) scores against
    ``batch[target_key]``; in eval it returns per-class scores."""

    criterion: MaskClassificationLoss
    target_key: str

    def loss(
        self, output: dict[str, list[Tensor]], batch: dict, prefix: str = ""
    ) -> dict[str, Tensor]:
        """Hungarian-matched losses of every layer (deep supervision), ``{prefix + name: value}``
        with MMDetection's names (``loss_cls``, ``d0.loss_mask``, ...)."""
        losses = self.criterion(output["cls"], output["masks"], batch[self.target_key])
        return {f"{prefix}{k}": v for k, v in losses.items()}

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)


class _TransformerDecoder(nn.Module):
    """Decoder layers plus the shared final LayerNorm (MMDetection's ``transformer_decoder``)."""

    def __init__(self, num_layers: int, embed_dims: int, num_heads: int, ffn_channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            Mask2FormerDecoderLayer(embed_dims, num_heads, ffn_channels) for _ in range(num_layers)
        )
        self.post_norm = nn.LayerNorm(embed_dims)


class Mask2FormerHead(MaskClassificationHead):
    """Queries attend in turn to the pixel decoder's levels (coarse to fine), each layer's
    cross-attention restricted to the foreground of the mask the previous layer predicted.

    Args:
        in_channels: width of the pixel decoder (given by the segmentor).
        num_classes: classes (the head adds "no object").
        num_queries: queries (100).
        num_layers: decoder layers (9: three rounds over three levels).
        num_heads: attention heads (8).
        ffn_channels: FFN width (2048).
        num_levels: pixel-decoder levels attended to (3).
        mask_channels: width of the mask embeddings (the pixel decoder's, 256).
        ignore_index: unlabelled pixels in the training labels.
        loss: keyword arguments of :class:`MaskClassificationLoss` (weights, points).
        target_key: the batch entry holding the label map.

    ``forward(MaskFeatures)``: in training ``{"cls": [(N, Q, C+1)] * (layers+1), "masks":
    [(N, Q, h, w)] * (layers+1)}`` (the prediction from the bare queries, then one per layer);
    in eval the class scores ``(N, C, H, W)`` of the last layer at stride 1 of the mask map's
    input (mask logits upsampled by its stride before the sigmoid, as MMSegmentation).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_queries: int = 100,
        num_layers: int = 9,
        num_heads: int = 8,
        ffn_channels: int = 2048,
        num_levels: int = 3,
        mask_channels: int | None = None,
        ignore_index: int = 255,
        loss: dict[str, Any] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes, self.num_queries = num_classes, num_queries
        self.num_heads, self.num_levels = num_heads, num_levels
        self.target_key = target_key
        dims = in_channels
        mask_channels = mask_channels or in_channels
        self.transformer_decoder = _TransformerDecoder(num_layers, dims, num_heads, ffn_channels)
        self.position_encoding = SinePositionalEncoding(dims // 2, normalize=True)
        self.query_embed = nn.Embedding(num_queries, dims)
        self.query_feat = nn.Embedding(num_queries, dims)
        self.level_embed = nn.Embedding(num_levels, dims)
        self.cls_embed = nn.Linear(dims, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(dims, dims),
            nn.ReLU(inplace=True),
            nn.Linear(dims, dims),
            nn.ReLU(inplace=True),
            nn.Linear(dims, mask_channels),
        )
        self.criterion = MaskClassificationLoss(
            num_classes, ignore_index=ignore_index, **(loss or {})
        )
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def _predict(
        self, query: Tensor, mask_features: Tensor, attn_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Class and mask logits of ``query (N, Q, C)`` and the next layer's attention mask
        ``(N * heads, Q, attn_h * attn_w)`` (True: background, masked out)."""
        query = self.transformer_decoder.post_norm(query)
        cls_logits = self.cls_embed(query)
        mask_logits = torch.einsum("nqc,nchw->nqhw", self.mask_embed(query), mask_features)
        attn = F.interpolate(mask_logits, attn_size, mode="bilinear", align_corners=False)
        attn = attn.flatten(2).repeat_interleave(self.num_heads, dim=0)
        return cls_logits, mask_logits, (attn.sigmoid() < 0.5).detach()

    def forward(self, decoded: MaskFeatures) -> Tensor | dict[str, list[Tensor]]:
        mask_features, levels = decoded.mask, decoded.multi_scale
        n = mask_features.shape[0]
        memories, positions = [], []
        for i in range(self.num_levels):
            x = levels[i]
            no_pad = x.new_zeros((n, *x.shape[-2:]), dtype=torch.bool)
            positions.append(self.position_encoding(no_pad).to(x.dtype).flatten(2).transpose(1, 2))
            memories.append(x.flatten(2).transpose(1, 2) + self.level_embed.weight[i])
        query = self.query_feat.weight[None].expand(n, -1, -1)
        query_pos = self.query_embed.weight[None].expand(n, -1, -1)
        cls_logits, mask_logits, attn = self._predict(query, mask_features, levels[0].shape[-2:])
        all_cls, all_masks = [cls_logits], [mask_logits]
        for i, layer in enumerate(self.transformer_decoder.layers):
            level = i % self.num_levels
            # a query whose mask is empty everywhere attends everywhere
            attn = attn & ~attn.all(-1, keepdim=True)
            query = layer(query, memories[level], query_pos, positions[level], attn_mask=attn)
            next_size = levels[(i + 1) % self.num_levels].shape[-2:]
            cls_logits, mask_logits, attn = self._predict(query, mask_features, next_size)
            all_cls.append(cls_logits)
            all_masks.append(mask_logits)
        if self.training:
            return {"cls": all_cls, "masks": all_masks}
        return semantic_inference(all_cls[-1], all_masks[-1], decoded.stride)
