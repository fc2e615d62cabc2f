"""K-Net head: class kernels taken from a semantic head's classifier and refined over several
stages by the features they group (Zhang et al., K-Net: Towards Unified Image Segmentation,
NeurIPS 2021), with MMSegmentation's ``IterativeDecodeHead`` / ``KernelUpdateHead`` parameter
names.

Each stage (a :class:`KernelUpdateHead`) softmax-normalises the previous stage's mask logits over
the classes, pools one feature vector per class with them, updates each class kernel from its
pooled feature through an adaptive gate (:class:`KernelUpdator`), lets the kernels exchange
information by self-attention and an FFN, and convolves the feature map with the new kernels.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from segkit.models.detr_layers import FFN, MultiheadAttention
from segkit.models.heads.seg_head import segmentation_losses
from segkit.models.losses import CrossEntropyLoss

__all__ = ["KNetHead", "KernelUpdateHead", "KernelUpdator"]


class KernelUpdator(nn.Module):
    """Adaptive kernel update (Eq. 4-5 of the paper; MMSeg's ``KernelUpdator``).

    The class kernels and their pooled features are both cut into chunks of ``in_channels``
    (MMSegmentation's K-Net configs use 256-wide chunks of 512-wide kernels), and every chunk is
    updated on its own: ``fc_norm(fc_layer(G_u * norm(K') + G_i * norm(F')))`` with sigmoid gates
    ``G_u``, ``G_i`` computed from the product of the projected feature and kernel.

    Args:
        in_channels: chunk width.
        feat_channels: width of the gates and projections.
        out_channels: chunk width after the update (``in_channels`` if None).
    """

    def __init__(
        self, in_channels: int = 256, feat_channels: int = 64, out_channels: int | None = None
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.out_channels = out_channels or in_channels
        self.dynamic_layer = nn.Linear(in_channels, 2 * feat_channels)
        self.input_layer = nn.Linear(in_channels, 2 * feat_channels)
        self.input_gate = nn.Linear(in_channels, feat_channels)
        self.update_gate = nn.Linear(in_channels, feat_channels)
        self.norm_in = nn.LayerNorm(feat_channels)
        self.norm_out = nn.LayerNorm(feat_channels)
        self.input_norm_in = nn.LayerNorm(feat_channels)
        self.input_norm_out = nn.LayerNorm(feat_channels)
        self.activation = nn.ReLU(inplace=True)
        self.fc_layer = nn.Linear(feat_channels, self.out_channels)
        self.fc_norm = nn.LayerNorm(self.out_channels)

    def forward(self, update_feature: Tensor, input_feature: Tensor) -> Tensor:
        """``update_feature (B, N, C)`` pooled class features, ``input_feature (B, N, 1, C)``
        class kernels -> updated kernel chunks ``(B * N * C / in_channels, 1, out_channels)``."""
        update_feature = update_feature.reshape(-1, self.in_channels)
        num_chunks = update_feature.size(0)
        param_in, param_out = self.dynamic_layer(update_feature).chunk(2, dim=-1)
        input_feats = self.input_layer(input_feature.reshape(num_chunks, -1, self.feat_channels))
        input_in, input_out = input_feats.chunk(2, dim=-1)
        gate_feats = input_in * param_in.unsqueeze(-2)  # F^G
        input_gate = self.input_norm_in(self.input_gate(gate_feats)).sigmoid()
        update_gate = self.norm_in(self.update_gate(gate_feats)).sigmoid()
        param_out = self.norm_out(param_out)
        input_out = self.input_norm_out(input_out)
        features = update_gate * param_out.unsqueeze(-2) + input_gate * input_out
        return self.activation(self.fc_norm(self.fc_layer(features)))


class KernelUpdateHead(nn.Module):
    """One K-Net stage on 1x1 class kernels (MMSeg's ``KernelUpdateHead``, ``conv_kernel_size=1``).

    Args:
        in_channels: width of the feature map and of the kernels.
        num_heads: heads of the attention between kernels.
        ffn_channels: hidden width of the FFN.
        num_mask_fcs: Linear-LN-ReLU blocks before ``fc_mask``.
        updator_channels, updator_feat_channels: :class:`KernelUpdator`'s chunk and gate widths.
        dropout: attention-weight and FFN dropout.
        feat_transform: a 1x1 conv (with bias) applied to the feature map first.
    """

    def __init__(
        self,
        in_channels: int = 512,
        num_heads: int = 8,
        ffn_channels: int = 2048,
        num_mask_fcs: int = 1,
        updator_channels: int = 256,
        updator_feat_channels: int = 256,
        dropout: float = 0.0,
        feat_transform: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % updator_channels:
            raise ValueError(f"in_channels {in_channels} is no multiple of {updator_channels}")
        self.in_channels = in_channels
        self.attention = MultiheadAttention(in_channels, num_heads, attn_drop=dropout)
        self.attention_norm = nn.LayerNorm(in_channels)
        self.kernel_update_conv = KernelUpdator(
            updator_channels, updator_feat_channels, updator_channels
        )
        self.feat_transform = (
            nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, in_channels, 1)))
            if feat_transform
            else None
        )
        self.ffn = FFN(in_channels, ffn_channels, ffn_drop=dropout)
        self.ffn_norm = nn.LayerNorm(in_channels)
        fcs: list[nn.Module] = []
        for _ in range(num_mask_fcs):
            fcs += [
                nn.Linear(in_channels, in_channels, bias=False),
                nn.LayerNorm(in_channels),
                nn.ReLU(inplace=True),
            ]
        self.mask_fcs = nn.Sequential(*fcs)
        self.fc_mask = nn.Linear(in_channels, in_channels)
        for p in self.parameters():  # MMSeg's init_weights: Xavier on every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor, kernels: Tensor, mask_logits: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, C, h, w)`` features, ``kernels (B, N, C)``, ``mask_logits (B, N, h', w')`` of
        the previous stage -> new mask logits ``(B, N, h, w)`` and kernels ``(B, N, C)``."""
        if self.feat_transform is not None:
            x = self.feat_transform(x)
        b, n = kernels.shape[:2]
        if mask_logits.shape[-2:] != x.shape[-2:]:
            mask_logits = nn.functional.interpolate(
                mask_logits, x.shape[-2:], mode="bilinear", align_corners=False
            )
        # group feature assembling (Eq. 3): class-softmax masks pool one feature per class
        pooled = torch.einsum("bnhw,bchw->bnc", mask_logits.softmax(dim=1), x)
        kernels = self.kernel_update_conv(pooled, kernels.unsqueeze(2)).reshape(b, n, -1)
        kernels = self.attention_norm(self.attention(kernels, kernels, kernels))
        kernels = self.ffn_norm(self.ffn(kernels))
        mask_kernels = self.fc_mask(self.mask_fcs(kernels))
        return torch.einsum("bnc,bchw->bnhw", mask_kernels, x), kernels


class KNetHead(nn.Module):
    """K-Net on a semantic decoder's map (MMSeg's ``IterativeDecodeHead``).

    The kernel-generating head's classifier (dropout + 1x1 ``conv_seg``) gives the first mask
    logits, and its weights the initial class kernels; ``num_stages`` :class:`KernelUpdateHead`
    s refine both. Every stage's logits (the first included) get the same losses.

    Args:
        in_channels: width of the decoded map (given by the segmentor).
        num_classes: classes.
        num_stages: kernel update stages (3).
        dropout: dropout before ``conv_seg`` (0.1).
        num_heads, ffn_channels, num_mask_fcs, updator_channels, updator_feat_channels,
        stage_dropout, feat_transform: of every :class:`KernelUpdateHead` (``stage_dropout`` is
            its ``dropout``).
        losses: applied to every stage's logits upsampled to the label size; named
            ``<loss>.s<stage>`` (stage 0: ``conv_seg``), all with their own ``loss_weight``.
        target_key: the batch entry holding the label map.

    ``forward(x (B, in_channels, h, w))``: in training a list of ``num_stages + 1`` logits
    ``(B, num_classes, h, w)``; in eval the last stage's.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_stages: int = 3,
        dropout: float = 0.1,
        num_heads: int = 8,
        ffn_channels: int = 2048,
        num_mask_fcs: int = 1,
        updator_channels: int = 256,
        updator_feat_channels: int = 256,
        stage_dropout: float = 0.0,
        feat_transform: bool = True,
        losses: list[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.target_key = target_key
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)
        self.kernel_update_head = nn.ModuleList(
            KernelUpdateHead(
                in_channels,
                num_heads,
                ffn_channels,
                num_mask_fcs,
                updator_channels,
                updator_feat_channels,
                stage_dropout,
                feat_transform,
            )
            for _ in range(num_stages)
        )
        self.losses = nn.ModuleList(losses if losses is not None else [CrossEntropyLoss()])

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        logits = self.conv_seg(self.dropout(x))
        kernels = self.conv_seg.weight.flatten(1).expand(x.shape[0], -1, -1)
        stages = [logits]
        for stage in self.kernel_update_head:
            logits, kernels = stage(x, kernels, logits)
            stages.append(logits)
        return stages if self.training else logits

    def loss(self, logits: list[Tensor], batch: dict, prefix: str = "") -> dict[str, Tensor]:
        """Every stage's losses, ``{prefix + <loss>.s<i>: value}``."""
        out: dict[str, Tensor] = {}
        for i, stage_logits in enumerate(logits):
            losses = segmentation_losses(stage_logits, batch[self.target_key], self.losses, prefix)
            out.update({f"{k}.s{i}": v for k, v in losses.items()})
        return out

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)
