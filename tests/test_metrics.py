"""SegMetrics against an independent computation and against torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from segkit.metrics import SegMetrics


def reference(preds: list[np.ndarray], targets: list[np.ndarray], c: int, ignore: int) -> dict:
    """MMSegmentation's IoUMetric arithmetic, written out per class with plain numpy sums."""
    inter = np.zeros(c)
    area_p = np.zeros(c)
    area_t = np.zeros(c)
    for p, t in zip(preds, targets):
        keep = t != ignore
        p, t = p[keep], t[keep]
        for k in range(c):
            inter[k] += np.sum((p == k) & (t == k))
            area_p[k] += np.sum(p == k)
            area_t[k] += np.sum(t == k)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_p + area_t - inter)
        acc = inter / area_t
        dice = 2 * inter / (area_p + area_t)
        prec = inter / area_p
        fscore = 2 * prec * acc / (prec + acc)
    return {
        "aAcc": inter.sum() / area_t.sum(),
        "IoU": iou,
        "Acc": acc,
        "Dice": dice,
        "Fscore": fscore,
        "mIoU": np.nanmean(iou),
        "mAcc": np.nanmean(acc),
        "mDice": np.nanmean(dice),
        "mFscore": np.nanmean(fscore),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_with_ignore_and_absent_classes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c, ignore = 6, 255
    preds, targets = [], []
    metric = SegMetrics(c, ignore)
    for _ in range(4):
        t = rng.integers(0, c - 1, (2, 17, 23))  # class c-1 never in the target
        p = rng.integers(0, c - 1, (2, 17, 23))
        p[rng.random(p.shape) < 0.05] = c - 1  # ... but sometimes predicted: IoU 0, not NaN
        t[rng.random(t.shape) < 0.2] = ignore
        t[t == 2] = 3 if seed == 2 else 2  # seed 2: class 2 absent from both -> NaN, skipped
        p[p == 2] = 3 if seed == 2 else 2
        preds.append(p)
        targets.append(t)
        metric.update(torch.from_numpy(p), torch.from_numpy(t))
    ours = metric.compute()
    ref = reference(preds, targets, c, ignore)
    for key in ("aAcc", "mIoU", "mAcc", "mDice", "mFscore"):
        assert float(ours[key]) == pytest.approx(ref[key], abs=1e-6), key
    for key in ("IoU", "Acc", "Dice", "Fscore"):
        np.testing.assert_allclose(ours[key].numpy(), ref[key], atol=1e-6, equal_nan=True)
    assert float(ours["IoU"][c - 1]) == 0.0
    if seed == 2:
        assert torch.isnan(ours["IoU"][2])


def test_agrees_with_torchmetrics() -> None:
    torch.manual_seed(0)
    c = 5
    ours = SegMetrics(c, ignore_index=255)
    jac = MulticlassJaccardIndex(c, ignore_index=255, average="none")
    acc = MulticlassAccuracy(c, ignore_index=255, average="micro", multidim_average="global")
    for _ in range(3):
        logits = torch.randn(3, c, 16, 16)
        target = torch.randint(0, c, (3, 16, 16))
        target[:, :3] = 255
        ours.update(logits, target)  # scores are argmaxed
        jac.update(logits.argmax(1), target)
        acc.update(logits.argmax(1), target)
    result = ours.compute()
    torch.testing.assert_close(result["IoU"], jac.compute().float())
    assert float(result["aAcc"]) == pytest.approx(float(acc.compute()), abs=1e-6)


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ"):
        SegMetrics(3).update(
            torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long)
        )


def test_unseen_split_gives_seen_unseen_and_harmonic_miou() -> None:
    target = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    preds = torch.tensor([[0, 0, 1, 0, 2, 3, -1, 3]])  # -1: an open-vocabulary "no match"
    metric = SegMetrics(4, class_names=["a", "b", "c", "d"], unseen_classes=["c", 3])
    metric.update(preds, target)
    out = metric.compute()
    # IoU: a 2/3, b 1/2, c 1/2, d 1/3 (the unmatched d pixel is a false negative only)
    iou = torch.tensor([2 / 3, 1 / 2, 1 / 2, 1 / 3])
    assert torch.allclose(out["IoU"], iou)
    seen, unseen = iou[:2].mean(), iou[2:].mean()
    assert out["mIoU_seen"] == pytest.approx(float(seen))
    assert out["mIoU_unseen"] == pytest.approx(float(unseen))
    assert out["hIoU"] == pytest.approx(float(2 * seen * unseen / (seen + unseen)))
    assert out["aAcc"] == pytest.approx(5 / 8)
    with pytest.raises(ValueError, match="'e' is not one of"):
        SegMetrics(4, class_names=["a", "b", "c", "d"], unseen_classes=["e"])
