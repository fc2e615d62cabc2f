"""SegMetrics: streaming segmentation metrics from a confusion matrix, synced across processes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["SegMetrics"]


class SegMetrics(Metric):
    """aAcc, mIoU, mAcc, mDice, mFscore, mPrecision, mRecall and per-class values.

    The state is a ``num_classes x num_classes`` confusion matrix (rows: ground truth, columns:
    prediction) summed over batches and, under DDP, over processes: exact, and cheap to sync.
    Pixels whose target is ``ignore_index`` are not counted.

    Definitions follow MMSegmentation's ``IoUMetric``, so the numbers are the same: per class
    ``IoU = TP / (TP + FP + FN)``, ``Acc = Recall = TP / (TP + FN)``, ``Precision = TP / (TP + FP)``,
    ``Dice = 2TP / (2TP + FP + FN)``, ``Fscore`` with ``beta``. A class absent from both target and
    prediction has NaN values and is left out of the means (``nanmean``); a class absent from the
    target but predicted has IoU 0. ``aAcc`` is the fraction of labelled pixels predicted right.
    Values are fractions in [0, 1] (MMSegmentation prints percentages).

    ``update(preds, target)``: ``preds`` ``(N, H, W)`` class ids or ``(N, C, H, W)`` scores;
    ``target`` ``(N, H, W)`` class ids. Predicted ids outside ``[0, num_classes)`` (-1: an
    open-vocabulary model's "no match") count as wrong for the target's class.

    ``unseen_classes`` (ids, or names when ``class_names`` is given): the classes held out of
    training in a zero-shot split; ``compute`` then adds ``mIoU_seen``, ``mIoU_unseen`` and their
    harmonic mean ``hIoU`` (the generalised zero-shot protocol of SPNet / ZegFormer).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        class_names: Sequence[str] | None = None,
        beta: float = 1.0,
        unseen_classes: Sequence[int | str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.unseen = _class_ids(unseen_classes, num_classes, class_names)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.beta = beta
        self.add_state(
            "confmat",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )
        # Pixels of each class predicted as "no class" (-1): false negatives, no false positive.
        self.add_state(
            "unmatched", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        n = self.num_classes
        # Out-of-range predictions (-1: no match) go to an extra column: wrong for every class.
        preds = torch.where((preds >= 0) & (preds < n), preds, n)
        # One bincount over all pixels; ignored ones go to an extra bin that is dropped, which
        # is cheaper than boolean-mask indexing (a copy and, on GPU, a host sync).
        index = target.reshape(-1).long() * (n + 1) + preds.reshape(-1).long()
        if self.ignore_index is not None:
            index = torch.where(target.reshape(-1) == self.ignore_index, n * (n + 1), index)
        counts = torch.bincount(index, minlength=n * (n + 1) + 1)
        counts = counts[: n * (n + 1)].reshape(n, n + 1)
        self.confmat += counts[:, :n]
        self.unmatched += counts[:, n]

    def compute(self) -> dict[str, Tensor]:
        """``{"aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall"}`` float scalars,
        ``{"IoU", "Acc", "Dice", "Fscore", "Precision", "Recall"}`` per-class ``(num_classes,)``
        floats, and ``"confmat"``: the synced ``(num_classes, num_classes)`` int64 pixel counts
        (rows: ground truth, columns: prediction; "no match" pixels of open-vocabulary models
        are not in it)."""
        cm = self.confmat.double()
        tp = cm.diag()
        gt = cm.sum(1) + self.unmatched.double()
        pred = cm.sum(0)
        iou = tp / (gt + pred - tp)
        recall = tp / gt
        precision = tp / pred
        dice = 2 * tp / (gt + pred)
        b2 = self.beta**2
        fscore = (1 + b2) * precision * recall / (b2 * precision + recall)
        per_class = {
            "IoU": iou,
            "Acc": recall,
            "Dice": dice,
            "Fscore": fscore,
            "Precision": precision,
            "Recall": recall,
        }
        out = {f"m{k}": v.nanmean() for k, v in per_class.items() if k != "Recall"}
        out["mRecall"] = out["mAcc"]
        out["aAcc"] = tp.sum() / gt.sum().clamp(min=1)
        if self.unseen:
            unseen = torch.zeros(self.num_classes, dtype=torch.bool, device=iou.device)
            unseen[self.unseen] = True
            seen_miou, unseen_miou = iou[~unseen].nanmean(), iou[unseen].nanmean()
            out["mIoU_seen"], out["mIoU_unseen"] = seen_miou, unseen_miou
            out["hIoU"] = 2 * seen_miou * unseen_miou / (seen_miou + unseen_miou)
        out.update(per_class)
        out = {k: v.float() for k, v in out.items()}
        out["confmat"] = self.confmat.clone()  # exact counts (float32 is exact only to 2**24)
        return out


def _class_ids(
    classes: Sequence[int | str] | None, num_classes: int, names: Sequence[str] | None
) -> list[int]:
    """Class ids from ids or names (checked against the label space)."""
    ids = []
    for c in classes or []:
        if isinstance(c, str) and not c.isdigit():
            if names is None or c not in names:
                raise ValueError(f"unseen class {c!r} is not one of the class names {names}")
            ids.append(list(names).index(c))
        else:
            ids.append(int(c))
    bad = [i for i in ids if not 0 <= i < num_classes]
    if bad:
        raise ValueError(f"unseen class ids {bad} outside 0..{num_classes - 1}")
    return sorted(set(ids))
