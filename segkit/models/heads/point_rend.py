"""PointRend's point head: per-point MLP predictions at uncertain locations (Kirillov et al.,
"PointRend: Image Segmentation as Rendering", CVPR 2020), as MMSegmentation's ``PointHead``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.losses import CrossEntropyLoss
from segkit.models.ops.point_sample import point_sample

__all__ = ["PointHead", "uncertainty"]


def uncertainty(logits: Tensor) -> Tensor:
    """Minus the margin between the two highest logits: ``(N, K, ...)`` -> ``(N, 1, ...)``;
    largest where the prediction is least certain."""
    top2 = torch.topk(logits, k=2, dim=1)[0]
    return (top2[:, 1] - top2[:, 0]).unsqueeze(1)


class PointHead(nn.Module):
    """Point-wise MLP (1x1 Conv1d + ReLU layers, then a Conv1d classifier) on the fine-grained
    features and the coarse logits sampled at the same points; the coarse logits join every
    layer's input (``coarse_pred_each_layer``).

    Training (``forward`` returns ``{"logits": (N, K, P), "points": (N, P, 2)}``): ``num_points``
    points per image, ``importance_sample_ratio`` of them the most uncertain among
    ``oversample_ratio * num_points`` uniform random ones, the rest uniform random; :meth:`loss`
    compares them with the labels sampled (nearest) at those points.

    Eval (``forward`` returns logits ``(N, K, h * f**s, w * f**s)``, ``f = scale_factor``,
    ``s = subdivision_steps``): ``s`` times, the logits are upsampled bilinearly by ``f`` and the
    ``subdivision_num_points`` most uncertain cells are re-predicted by the MLP.

    Args:
        in_channels: width of the fine-grained features (given by the segmentor: the decoder's
            ``channels``).
        num_classes: number of classes.
        channels: width of the MLP (MMSeg: 256); ``num_fcs``: its layers (3).
        coarse_pred_each_layer: concatenate the coarse logits to every layer's input.
        align_corners: of the point sampling and the subdivision's upsampling.
        num_points, oversample_ratio, importance_sample_ratio: training point selection
            (MMSeg's ``train_cfg``: 2048, 3, 0.75).
        subdivision_steps, subdivision_num_points, scale_factor: inference (MMSeg's ``test_cfg``:
            2, 8196, 2).
        losses: point losses (cross-entropy), as :class:`~segkit.models.heads.SegHead`'s.
        target_key: the batch entry holding the label map.

    ``forward`` takes the decoder's ``(coarse logits (N, K, h, w), [fine maps])``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        num_fcs: int = 3,
        coarse_pred_each_layer: bool = True,
        align_corners: bool = False,
        num_points: int = 2048,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        subdivision_steps: int = 2,
        subdivision_num_points: int = 8196,
        scale_factor: float = 2.0,
        losses: Sequence[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
            raise ValueError("need oversample_ratio >= 1 and 0 <= importance_sample_ratio <= 1")
        self.num_classes = num_classes
        self.coarse_pred_each_layer = coarse_pred_each_layer
        self.align_corners = align_corners
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.subdivision_steps = subdivision_steps
        self.subdivision_num_points = subdivision_num_points
        self.scale_factor = scale_factor
        self.target_key = target_key
        self.fcs = nn.ModuleList()
        c_in = in_channels + num_classes
        for _ in range(num_fcs):
            fc = nn.Sequential()
            fc.add_module("conv", nn.Conv1d(c_in, channels, 1))
            fc.add_module("act", nn.ReLU())
            self.fcs.append(fc)
            c_in = channels + (num_classes if coarse_pred_each_layer else 0)
        self.fc_seg = nn.Conv1d(c_in, num_classes, 1)
        nn.init.normal_(self.fc_seg.weight, 0, 0.01)
        nn.init.zeros_(self.fc_seg.bias)
        self.losses = nn.ModuleList(losses if losses is not None else [CrossEntropyLoss()])

    def point_logits(self, fine: Sequence[Tensor], coarse: Tensor, points: Tensor) -> Tensor:
        """The MLP's logits ``(N, K, P)`` at ``points (N, P, 2)`` in ``[0, 1]``."""
        ac = self.align_corners
        fine_feats = torch.cat([point_sample(f, points, align_corners=ac) for f in fine], dim=1)
        coarse_feats = point_sample(coarse, points, align_corners=ac)
        x = torch.cat([fine_feats, coarse_feats], dim=1)
        for fc in self.fcs:
            x = fc(x)
            if self.coarse_pred_each_layer:
                x = torch.cat([x, coarse_feats], dim=1)
        return self.fc_seg(x)

    @torch.no_grad()
    def training_points(self, coarse: Tensor) -> Tensor:
        """Uncertainty-biased random points ``(N, num_points, 2)`` for training."""
        n = coarse.shape[0]
        num_sampled = int(self.num_points * self.oversample_ratio)
        num_uncertain = int(self.importance_sample_ratio * self.num_points)
        candidates = torch.rand(n, num_sampled, 2, device=coarse.device)
        scores = uncertainty(point_sample(coarse, candidates, align_corners=False))
        idx = torch.topk(scores[:, 0], k=num_uncertain, dim=1)[1]
        points = torch.gather(candidates, 1, idx.unsqueeze(2).expand(-1, -1, 2))
        num_random = self.num_points - num_uncertain
        if num_random > 0:
            extra = torch.rand(n, num_random, 2, device=coarse.device)
            points = torch.cat([points, extra], dim=1)
        return points

    def subdivision_points(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """The most uncertain cells of ``logits (N, K, h, w)``: flat indices ``(N, P)`` and
        their centres ``(N, P, 2)`` in ``[0, 1]``."""
        scores = uncertainty(logits)
        n, _, h, w = scores.shape
        num = min(h * w, self.subdivision_num_points)
        idx = scores.view(n, h * w).topk(num, dim=1)[1]
        points = torch.stack(
            [
                (idx % w).float() / w + 0.5 / w,
                torch.div(idx, w, rounding_mode="floor").float() / h + 0.5 / h,
            ],
            dim=2,
        )
        return idx, points

    def forward(self, decoded: tuple[Tensor, Sequence[Tensor]]) -> Any:
        coarse, fine = decoded
        if self.training:
            points = self.training_points(coarse)
            return {"logits": self.point_logits(fine, coarse, points), "points": points}
        logits = coarse
        for _ in range(self.subdivision_steps):
            logits = F.interpolate(
                logits,
                scale_factor=self.scale_factor,
                mode="bilinear",
                align_corners=self.align_corners,
            )
            n, k, h, w = logits.shape
            idx, points = self.subdivision_points(logits)
            refined = self.point_logits(fine, coarse, points)
            logits = logits.reshape(n, k, h * w).scatter(
                2, idx.unsqueeze(1).expand(-1, k, -1), refined
            )
            logits = logits.view(n, k, h, w)
        return logits

    def loss(
        self, output: Mapping[str, Tensor], batch: Mapping[str, Any], prefix: str = ""
    ) -> dict[str, Tensor]:
        """Point losses: labels ``batch[target_key] (N, H, W)`` sampled (nearest) at the points."""
        labels = batch[self.target_key]
        labels = point_sample(
            labels.unsqueeze(1).float(),
            output["points"],
            mode="nearest",
            align_corners=self.align_corners,
        )
        labels = labels.squeeze(1).long()
        return {f"{prefix}{loss.name}": loss(output["logits"], labels) for loss in self.losses}

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)
