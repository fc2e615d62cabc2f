"""Does an exported model compute what the PyTorch model computes? Checked on real sizes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from segkit.models import Segmentor

__all__ = ["DEFAULT_SIZES", "ParityError", "ParityReport", "ParityRow", "check_parity"]

# Two sizes every model config accepts: a square one and an odd, non-square one, so that a size
# frozen into the graph at export (example size 128x128) shows as a failure.
DEFAULT_SIZES = ((128, 128), (97, 131))

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]


class ParityError(AssertionError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class ParityRow:
    """One input size: the largest absolute differences, the largest magnitudes of PyTorch's
    outputs (the scale the tolerance is relative to) and the label agreement."""

    size: tuple[int, int]
    batch: int
    scores_max_abs: float | None
    depth_max_abs: float | None
    label_agreement: float | None
    scores_scale: float | None = None
    depth_scale: float | None = None


@dataclass
class ParityReport:
    """Rows per size, against ``tolerance`` and ``min_label_agreement``.

    A size passes when ``max|exported - PyTorch| <= tolerance * max(1, max|PyTorch|)`` for the
    scores and the depth (absolute for outputs within [-1, 1], else relative to the largest
    value: float32 rounding grows with the values, and random weights give logits in the
    thousands), and at least ``min_label_agreement`` of the label pixels are equal."""

    rows: list[ParityRow]
    tolerance: float
    min_label_agreement: float

    @property
    def failures(self) -> list[str]:
        out = []
        for r in self.rows:
            where = f"{r.size[0]}x{r.size[1]}"
            for name, value, scale in (
                ("scores", r.scores_max_abs, r.scores_scale),
                ("depth", r.depth_max_abs, r.depth_scale),
            ):
                allowed = self.tolerance * max(1.0, scale or 0.0)
                if value is not None and not value <= allowed:  # NaN fails too
                    out.append(
                        f"{where}: {name} max |diff| {value:.3g} > {allowed:.3g} "
                        f"({self.tolerance:g} x max(1, max |PyTorch| = {scale:.3g}))"
                    )
            if r.label_agreement is not None and r.label_agreement < self.min_label_agreement:
                out.append(
                    f"{where}: labels agree on {r.label_agreement:.4%} of pixels "
                    f"< {self.min_label_agreement:.2%}"
                )
        return out

    @property
    def ok(self) -> bool:
        return not self.failures

    def table(self) -> str:
        """A plain-text table of the rows."""

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines = [
            f"{'size':>9} {'batch':>5} {'scores max|diff|':>17} {'max|scores|':>11} "
            f"{'depth max|diff|':>16} {'max depth':>9} {'labels agree':>12}"
        ]
        for r in self.rows:
            lines.append(
                f"{r.size[0]:>4}x{r.size[1]:<4} {r.batch:>5} {fmt(r.scores_max_abs, '.2e'):>17} "
                f"{fmt(r.scores_scale, '.3g'):>11} {fmt(r.depth_max_abs, '.2e'):>16} "
                f"{fmt(r.depth_scale, '.3g'):>9} {fmt(r.label_agreement, '.4%'):>12}"
            )
        verdict = "OK" if self.ok else "FAILED: " + "; ".join(self.failures)
        lines.append(
            f"tolerance {self.tolerance:g} x max(1, max |PyTorch|), labels >= "
            f"{self.min_label_agreement:.2%}: {verdict}"
        )
        return "\n".join(lines)


def check_parity(
    model: Segmentor,
    run: Run,
    sizes: Sequence[Sequence[int]] = DEFAULT_SIZES,
    batch: int = 2,
    tolerance: float = 1e-3,
    min_label_agreement: float = 0.999,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Run ``run`` (the exported model: uint8 ``(N, 3, H, W)`` -> ``{"labels", "scores",
    "depth"}`` arrays) and ``model.predict`` with whole-image inference on the same random
    images, at each size.

    The reference is ``Segmentor.predict`` with ``test_cfg`` set to whole-image inference, one
    scale, no flip (what the export contains; ``test_cfg.resize`` is kept).

    Raises:
        ParityError: naming the numbers, when ``raise_on_failure`` and a check fails.
    """
    generator = torch.Generator().manual_seed(seed)
    whole = dataclasses.replace(model.test_cfg, mode="whole", scales=[1.0], flip=False)
    saved, model.test_cfg = model.test_cfg, whole
    rows = []
    try:
        for h, w in sizes:
            images = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=generator)
            exported = run(images.numpy())
            reference = model.predict(images.float(), return_scores=True)
            rows.append(_compare((h, w), exported, reference))
    finally:
        model.test_cfg = saved
    report = ParityReport(rows, tolerance, min_label_agreement)
    if raise_on_failure and not report.ok:
        raise ParityError("exported model differs from PyTorch:\n" + report.table())
    return report


def _compare(
    size: tuple[int, int], exported: Mapping[str, np.ndarray], reference: list[dict]
) -> ParityRow:
    def stack(key: str) -> np.ndarray:
        return torch.stack([r[key] for r in reference]).cpu().numpy()

    scores = depth = agreement = scores_scale = depth_scale = None
    if "scores" in exported:
        ref = stack("seg_scores")
        got = exported["scores"]
        _check_shape("scores", got, ref)
        scores = float(np.abs(got.astype(np.float64) - ref).max())
        scores_scale = float(np.abs(ref).max())
        labels, ref_labels = exported["labels"], stack("seg")
        _check_shape("labels", labels, ref_labels)
        agreement = float((labels == ref_labels).mean())
    if "depth" in exported:
        ref = stack("depth")[:, None]
        _check_shape("depth", exported["depth"], ref)
        depth = float(np.abs(exported["depth"].astype(np.float64) - ref).max())
        depth_scale = float(np.abs(ref).max())
    return ParityRow(size, len(reference), scores, depth, agreement, scores_scale, depth_scale)


def _check_shape(name: str, got: np.ndarray, ref: np.ndarray) -> None:
    if got.shape != ref.shape:
        raise ParityError(f"exported {name} have shape {got.shape}, PyTorch's {ref.shape}")
