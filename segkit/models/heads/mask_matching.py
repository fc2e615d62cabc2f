"""Set-prediction losses of the mask-classification heads (MaskFormer, Mask2Former).

Each image's semantic label map becomes one binary target mask per class present (ignored pixels
belong to none); queries are matched one-to-one to targets by the Hungarian algorithm on a
class + mask + dice cost (``scipy.optimize.linear_sum_assignment``); matched queries learn the
class and mask, the others learn "no object". This follows MMDetection's ``MaskFormerHead`` /
``Mask2FormerHead`` (``HungarianAssigner``, ``ClassificationCost``, ``CrossEntropyLossCost`` /
``FocalLossCost``, ``DiceCost``, point-sampled mask losses with importance sampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

__all__ = [
    "MaskClassificationLoss",
    "point_sample",
    "semantic_to_masks",
    "uncertain_point_coords",
]


def semantic_to_masks(label: Tensor, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """``label (H, W)`` int64 -> ``(classes (G,), masks (G, H, W) float)``, one mask per class
    present; pixels at ``ignore_index`` are in no mask."""
    classes = torch.unique(label)
    classes = classes[classes != ignore_index]
    masks = (label[None] == classes[:, None, None]).float()
    return classes, masks


def point_sample(inputs: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of ``inputs (N, C, H, W)`` at ``points (N, P, 2)`` (``(x, y)`` in
    ``[0, 1]``, pixel centres at ``(i + 0.5) / size``) -> ``(N, C, P)``."""
    out = F.grid_sample(inputs, 2.0 * points[:, :, None] - 1.0, align_corners=False)
    return out[..., 0]


def uncertain_point_coords(
    logits: Tensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> Tensor:
    """PointRend's training points for mask logits ``(M, 1, h, w)`` -> ``(M, num_points, 2)``.

    Of ``oversample_ratio * num_points`` uniform random points, the ``importance_sample_ratio``
    share closest to the decision boundary (largest ``-|logit|``) are kept; the rest of the
    ``num_points`` are drawn uniformly.
    """
    m = logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(m, num_sampled, 2, device=logits.device)
    uncertainty = -point_sample(logits, coords).abs()[:, 0]
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = uncertainty.topk(num_uncertain, dim=1)[1]
    idx = idx + num_sampled * torch.arange(m, device=logits.device)[:, None]
    coords = coords.view(-1, 2)[idx.view(-1)].view(m, num_uncertain, 2)
    if num_random > 0:
        coords = torch.cat([coords, torch.rand(m, num_random, 2, device=logits.device)], dim=1)
    return coords


def _pairwise_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of every prediction ``(Q, P)`` against every target ``(G, P)``
    -> ``(Q, G)``."""
    pos = F.softplus(-logits)  # BCE against 1
    neg = F.softplus(logits)  # BCE against 0
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def _pairwise_focal(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Mean sigmoid focal loss of every prediction ``(Q, P)`` against every target ``(G, P)``
    -> ``(Q, G)`` (MMDetection's ``FocalLossCost(binary_input=True)``, eps 1e-12)."""
    p = logits.sigmoid()
    neg = -(1 - p + 1e-12).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + 1e-12).log() * alpha * (1 - p).pow(gamma)
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def _pairwise_dice(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """``1 - dice`` of every sigmoid prediction ``(Q, P)`` against every target ``(G, P)``."""
    p = logits.sigmoid()
    numerator = 2 * p @ targets.T
    denominator = p.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + eps) / (denominator + eps)


def _dice_loss(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """Summed ``1 - dice`` of sigmoid ``logits (M, P)`` against ``targets (M, P)``."""
    p = logits.sigmoid()
    numerator = 2 * (p * targets).sum(-1)
    denominator = p.sum(-1) + targets.sum(-1)
    return (1 - (numerator + eps) / (denominator + eps)).sum()


def _focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Summed sigmoid focal loss (Lin et al.) of ``logits`` against binary ``targets``."""
    p = logits.sigmoid()
    pt = (1 - p) * targets + p * (1 - targets)
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * pt.pow(gamma)
    return (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight).sum()


class MaskClassificationLoss(nn.Module):
    """Hungarian-matched class + mask + dice losses over a list of decoder layers' predictions.

    Args:
        num_classes: classes, without the "no object" class (the last logit).
        ignore_index: label of unlabelled pixels (in no target mask).
        no_object_weight: class weight of "no object" in the classification loss.
        cls_weight, mask_weight, dice_weight: loss weights (also the matching cost weights,
            as in MMSegmentation's configs).
        mask_loss: ``"bce"`` (Mask2Former) or ``"focal"`` (MaskFormer).
        num_points: ``None``: mask losses on the predictions upsampled to the label size and
            matching on the labels downsampled (nearest) to the prediction size (MaskFormer);
            an int: both on that many sampled points (Mask2Former: 12544; uniform points for
            matching, importance-sampled points for the losses).
        oversample_ratio, importance_sample_ratio: the point sampling of the losses.
        focal_alpha, focal_gamma: the focal loss and cost.
        dice_eps: smoothing of the dice loss and cost.

    Losses of the last layer are ``loss_cls``, ``loss_mask``, ``loss_dice``; earlier layers
    ``d{i}.loss_*`` (MMDetection's names). The mask count normalising the mask losses is the
    number of targets in this process's batch (MMDetection averages it over GPUs).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        no_object_weight: float = 0.1,
        cls_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        mask_loss: str = "bce",
        num_points: int | None = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        dice_eps: float = 1.0,
    ) -> None:
        super().__init__()
        if mask_loss not in ("bce", "focal"):
            raise ValueError(f"mask_loss must be 'bce' or 'focal', got {mask_loss!r}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.cls_weight, self.mask_weight, self.dice_weight = cls_weight, mask_weight, dice_weight
        self.mask_loss, self.num_points = mask_loss, num_points
        self.oversample_ratio, self.importance_sample_ratio = (
            oversample_ratio,
            importance_sample_ratio,
        )
        self.focal_alpha, self.focal_gamma, self.dice_eps = focal_alpha, focal_gamma, dice_eps
        weight = torch.ones(num_classes + 1)
        weight[-1] = no_object_weight
        self.register_buffer("class_weight", weight, persistent=False)

    def _mask_cost(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.mask_loss == "bce":
            return _pairwise_bce(logits, targets)
        return _pairwise_focal(logits, targets, self.focal_alpha, self.focal_gamma)

    @torch.no_grad()
    def match(
        self, cls_logits: Tensor, mask_logits: Tensor, classes: Tensor, masks: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One image: ``cls_logits (Q, C+1)``, ``mask_logits (Q, h, w)``, targets ``classes
        (G,)`` and ``masks (G, H, W)`` -> matched ``(query indices, target indices)``."""
        if classes.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=cls_logits.device)
            return empty, empty
        q = mask_logits.shape[0]
        if self.num_points is None:
            pred = mask_logits.flatten(1)
            target = F.interpolate(masks[:, None], mask_logits.shape[-2:], mode="nearest")
            target = target.flatten(1)
        else:
            points = torch.rand(1, self.num_points, 2, device=mask_logits.device)
            pred = point_sample(mask_logits[:, None], points.expand(q, -1, -1))[:, 0]
            target = point_sample(masks[:, None], points.expand(len(masks), -1, -1))[:, 0]
        pred, target = pred.float(), target.float()
        cost = -cls_logits.float().softmax(-1)[:, classes] * self.cls_weight
        cost = cost + self._mask_cost(pred, target) * self.mask_weight
        cost = cost + _pairwise_dice(pred, target, self.dice_eps) * self.dice_weight
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        device = cls_logits.device
        return torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)

    def layer_losses(
        self, cls_logits: Tensor, mask_logits: Tensor, targets: Sequence[tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One decoder layer: ``cls_logits (N, Q, C+1)``, ``mask_logits (N, Q, h, w)`` and
        per-image ``(classes, masks)`` -> ``(loss_cls, loss_mask, loss_dice)``."""
        n, q = cls_logits.shape[:2]
        labels = torch.full((n, q), self.num_classes, dtype=torch.long, device=cls_logits.device)
        preds, gts = [], []
        for i, (classes, masks) in enumerate(targets):
            rows, cols = self.match(cls_logits[i], mask_logits[i], classes, masks)
            labels[i, rows] = classes[cols]
            preds.append(mask_logits[i, rows])
            gts.append(masks[cols])
        # class-weighted mean over all queries ("no object" weighs 0.1)
        loss_cls = F.cross_entropy(
            cls_logits.flatten(0, 1).float(), labels.flatten(), weight=self.class_weight
        )
        pred, gt = torch.cat(preds), torch.cat(gts)
        num_masks = max(len(gt), 1)
        if len(gt) == 0:
            zero = mask_logits.sum() * 0.0
            return loss_cls * self.cls_weight, zero, zero
        if self.num_points is None:
            pred = F.interpolate(pred[:, None], gt.shape[-2:], mode="bilinear", align_corners=False)
            pred, gt = pred.flatten(1), gt.flatten(1)
        else:
            with torch.no_grad():
                points = uncertain_point_coords(
                    pred[:, None].detach(),
                    self.num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                )
                gt = point_sample(gt[:, None], points)[:, 0]
            pred = point_sample(pred[:, None], points)[:, 0]
        pred = pred.float()
        loss_dice = _dice_loss(pred, gt, self.dice_eps) / num_masks
        if self.mask_loss == "bce":
            loss_mask = F.binary_cross_entropy_with_logits(pred, gt, reduction="sum")
        else:
            loss_mask = _focal_loss(pred, gt, self.focal_alpha, self.focal_gamma)
        loss_mask = loss_mask / (num_masks * pred.shape[1])
        return (
            loss_cls * self.cls_weight,
            loss_mask * self.mask_weight,
            loss_dice * self.dice_weight,
        )

    def forward(
        self, cls_logits: Sequence[Tensor], mask_logits: Sequence[Tensor], label: Tensor
    ) -> dict[str, Tensor]:
        """Losses of every layer: ``cls_logits[l] (N, Q, C+1)``, ``mask_logits[l] (N, Q, h, w)``
        (the last entry is the final prediction), ``label (N, H, W)`` int64."""
        targets = [semantic_to_masks(lab, self.ignore_index) for lab in label]
        targets = [(c, m.to(mask_logits[-1].dtype)) for c, m in targets]
        losses: dict[str, Tensor] = {}
        last = len(cls_logits) - 1
        for i, (cls, masks) in enumerate(zip(cls_logits, mask_logits, strict=True)):
            names = ("loss_cls", "loss_mask", "loss_dice")
            prefix = "" if i == last else f"d{i}."
            for name, value in zip(names, self.layer_losses(cls, masks, targets), strict=True):
                losses[prefix + name] = value
        return losses
