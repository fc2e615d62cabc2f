"""AdaBins: depth as the expectation over adaptive, per-image depth bins (Bhat et al., CVPR 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.heads.depth import depth_losses
from segkit.models.losses.depth import BinsChamferLoss, SILogLoss

__all__ = ["BinsDepthHead"]


class BinsDepthHead(nn.Module):
    """AdaBins' adaptive-bins head on a decoded map (the "mini-ViT" and the hybrid regression).

    1. Patch embedding: a ``patch_size`` x ``patch_size`` conv with the same stride to
       ``embed_dim`` channels, plus learned 1-D position embeddings (at most ``max_patches``
       patches); ``num_layers`` post-norm transformer encoder layers (``num_heads`` heads,
       feed-forward ``ffn_dim``, dropout ``dropout``).
    2. The first output token goes through an MLP (``embed_dim -> 256 -> 256 -> num_bins``,
       LeakyReLU) to the bin widths, normalised to sum to 1 (``norm``: ``"linear"``:
       ``relu(y) + 0.1``, then divided by the sum (AdaBins' default); ``"softmax"``;
       ``"sigmoid"``, then divided by the sum). The next ``num_queries`` tokens are queries.
    3. Range attention: a 3x3 conv of the decoded map to ``embed_dim`` channels, dot each query
       per pixel -> ``(N, num_queries, h, w)``; a 1x1 conv to ``num_bins`` and a softmax over
       bins give per-pixel bin probabilities ``p``.
    4. Bin edges ``min_depth + cumsum(widths * (max_depth - min_depth))``, centres ``c`` their
       midpoints; depth ``= sum_i p_i c_i``, so it always lies in ``[min_depth, max_depth]``.

    The decoded map must have at least ``num_queries + 1`` patches. AdaBins uses 16x16 patches on
    a 1/2-resolution decoded map; segkit decoders output 1/4 (or 1/8) resolution, so the default
    ``patch_size=8`` covers the same 32x32 image pixels per patch (a 512x512 crop: 256 patches).

    Args:
        in_channels: channels of the decoded map (from the segmentor).
        min_depth, max_depth: the depth range in metres (NYU: 1e-3 to 10; KITTI: 1e-3 to 80).
        num_bins: number of bins (256 in AdaBins).
        embed_dim, num_queries, patch_size, num_layers, num_heads, ffn_dim, dropout, max_patches:
            the mini-ViT (AdaBins: 128, 128, 16, 4, 4, 1024, 0.1, 500).
        norm: bin-width normalisation, ``"linear"``, ``"softmax"`` or ``"sigmoid"``.
        losses: depth losses on the depth map (``segkit.models.losses.depth``; default
            :class:`~segkit.models.losses.depth.SILogLoss`).
        chamfer_weight: weight of the bin-centre loss
            :class:`~segkit.models.losses.depth.BinsChamferLoss` (0.1 in AdaBins; 0: off).
        target_key: the batch entry holding the ground truth ``(N, H, W)`` metres, 0 = invalid.

    ``forward(x (N, C, h, w))``: in eval mode ``(N, 1, h, w)`` depth in metres; in training mode
    ``{"depth": (N, 1, h, w), "centres": (N, num_bins)}`` (metres), which :meth:`loss` takes.
    """

    num_classes = 1  # one output channel (code that sizes outputs by heads reads this)

    def __init__(
        self,
        in_channels: int,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        num_bins: int = 256,
        embed_dim: int = 128,
        num_queries: int = 128,
        patch_size: int = 8,
        num_layers: int = 4,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        max_patches: int = 500,
        norm: str = "linear",
        losses: list[nn.Module] | None = None,
        chamfer_weight: float = 0.1,
        target_key: str = "depth",
    ) -> None:
        super().__init__()
        if max_depth is None or not max_depth > min_depth:
            raise ValueError(f"need min_depth < max_depth, got {min_depth} and {max_depth}")
        if norm not in ("linear", "softmax", "sigmoid"):
            raise ValueError(f"norm must be linear, softmax or sigmoid, got {norm!r}")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.num_queries = num_queries
        self.norm = norm
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.rand(max_patches, embed_dim))  # AdaBins' init
        layer = nn.TransformerEncoderLayer(
            embed_dim, num_heads, ffn_dim, dropout=dropout, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.bin_mlp = nn.Sequential(
            nn.Linear(embed_dim, 256),
            nn.LeakyReLU(),
            nn.Linear(256, 256),
            nn.LeakyReLU(),
            nn.Linear(256, num_bins),
        )
        self.key_conv = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.bin_logits = nn.Conv2d(num_queries, num_bins, 1)
        if losses is None:
            losses = [SILogLoss()]
        self.losses = nn.ModuleList(losses)
        self.chamfer = BinsChamferLoss(loss_weight=chamfer_weight) if chamfer_weight else None
        self.target_key = target_key

    def bins(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (N, C, h, w)`` -> normalised bin widths ``(N, num_bins)`` (rows sum to 1) and
        range-attention maps ``(N, num_queries, h, w)``."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, S, E)
        s = tokens.shape[1]
        if s > self.pos_embed.shape[0] or s < self.num_queries + 1:
            raise ValueError(
                f"the decoded map {tuple(x.shape[2:])} gives {s} patches; the head needs between "
                f"num_queries + 1 = {self.num_queries + 1} and max_patches = "
                f"{self.pos_embed.shape[0]} (change patch_size)"
            )
        tokens = self.transformer(tokens + self.pos_embed[:s])
        y = self.bin_mlp(tokens[:, 0])
        if self.norm == "softmax":
            widths = y.softmax(dim=1)
        else:
            y = F.relu(y) + 0.1 if self.norm == "linear" else torch.sigmoid(y)
            widths = y / y.sum(dim=1, keepdim=True)
        queries = tokens[:, 1 : self.num_queries + 1]  # (N, Q, E)
        attention = torch.einsum("nehw,nqe->nqhw", self.key_conv(x), queries)
        return widths, attention

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        widths, attention = self.bins(x)
        probs = self.bin_logits(attention).softmax(dim=1)  # (N, B, h, w)
        edges = self.min_depth + (self.max_depth - self.min_depth) * widths.cumsum(dim=1)
        edges = F.pad(edges, (1, 0), value=self.min_depth)  # (N, B + 1)
        centres = 0.5 * (edges[:, :-1] + edges[:, 1:])
        depth = torch.einsum("nbhw,nb->nhw", probs, centres).unsqueeze(1)
        if self.training:
            return {"depth": depth, "centres": centres}
        return depth

    def loss(self, pred: Tensor | dict[str, Tensor], batch: dict, prefix: str = "") -> dict:
        """Depth losses on ``pred["depth"]`` plus, with the centres of training mode, the
        chamfer loss between bin centres and the valid target depths."""
        target = batch[self.target_key]
        depth = pred["depth"] if isinstance(pred, dict) else pred
        losses = depth_losses(depth, target, self.losses, prefix)
        if isinstance(pred, dict) and self.chamfer is not None:
            target = target.float()
            losses[f"{prefix}{self.chamfer.name}"] = self.chamfer(
                pred["centres"], target, target > 0
            )
        return losses

    @staticmethod
    def postprocess(output: Tensor) -> Tensor:
        """``(1, H, W)`` -> ``(H, W)`` float depth."""
        return output[0].float()
