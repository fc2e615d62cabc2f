"""Confusion matrices as matplotlib figures (notebooks, the run's ``visuals/`` folder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["confusion_matrix", "figure_to_array", "normalize_confmat"]

Normalize = Literal["true", "pred", "all"] | None


def normalize_confmat(confmat: np.ndarray, normalize: Normalize = "true") -> np.ndarray:
    """``(C, C)`` pixel counts (rows: ground truth, columns: prediction) -> float64 fractions.

    ``"true"``: each row sums to 1 (per-class recall on the diagonal), ``"pred"``: each column
    (precision), ``"all"``: the whole matrix, ``None``: the counts as floats. A row (column) with
    no pixels, a class absent from the ground truth (predictions), is NaN, not 0: "never seen" is
    not "always wrong". The names follow scikit-learn's ``confusion_matrix(normalize=)``.
    """
    cm = np.asarray(confmat, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is (C, C), got shape {cm.shape}")
    if normalize is None:
        return cm
    if normalize == "true":
        total = cm.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = cm.sum(axis=0, keepdims=True)
    elif normalize == "all":
        total = np.asarray(cm.sum())
    else:
        raise ValueError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, cm / np.where(total > 0, total, 1), np.nan)


def confusion_matrix(
    confmat: np.ndarray,
    class_names: Sequence[str] | None = None,
    normalize: Normalize = "true",
    title: str | None = None,
    cmap: str = "Blues",
    annotate: bool | None = None,
    size: float | None = None,
) -> Figure:
    """Plot a ``(C, C)`` confusion matrix (rows: ground truth, columns: prediction; a tensor or
    an array of pixel counts, e.g. ``SegMetrics.compute()["confmat"]``) as a matplotlib Figure.

    ``normalize``: see :func:`normalize_confmat` (row-normalised by default: the diagonal is each
    class's accuracy); NaN cells (classes absent from the ground truth) are drawn grey.
    ``annotate``: write the values in the cells (default: up to 30 classes). ``size``: the figure's
    side in inches (default grows with the number of classes). Uses the object-oriented
    matplotlib API (no pyplot state), so it is safe in callbacks and threads.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cm = normalize_confmat(_to_numpy(confmat), normalize)
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}x{n} confusion matrix")
    annotate = n <= 30 if annotate is None else annotate
    side = size if size is not None else min(4.0 + 0.45 * n, 40.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    colours = colormaps[cmap].with_extremes(bad="lightgrey")
    finite = cm[np.isfinite(cm)]
    vmax = 1.0 if normalize is not None else float(finite.max(initial=1.0))
    image = ax.imshow(np.ma.masked_invalid(cm), cmap=colours, vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), names, rotation=90 if n > 6 else 45, ha="center" if n > 6 else "right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if title:
        ax.set_title(title)
    if annotate:
        for i, j in np.ndindex(n, n):
            v = cm[i, j]
            if not np.isfinite(v):
                continue
            text = f"{v:.2f}" if normalize is not None else f"{int(v)}"
            colour = "white" if v > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=7)
    return fig


def figure_to_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """Render a matplotlib Figure to an ``(H, W, 3)`` uint8 RGB array (Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)
