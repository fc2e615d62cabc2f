"""segkit.viz legend and confusion-matrix plots, and the callbacks that write them each
validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_shapes
from PIL import Image

from segkit.cli.train import train
from segkit.viz import confusion_matrix, figure_to_array, normalize_confmat, palette_legend

NAMES = ["background", "disc", "square", "triangle", "ring"]
PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200]]


@pytest.mark.parametrize("max_height", [None, 40])
def test_legend_has_one_swatch_per_class_in_its_colour(max_height) -> None:
    row, swatch = 18, 14
    legend = palette_legend(NAMES, PALETTE, row_height=row, swatch=swatch, max_height=max_height)
    rows = len(NAMES) if max_height is None else max_height // row
    columns = -(-len(NAMES) // rows)
    assert legend.dtype == np.uint8 and legend.shape[0] == rows * row
    width = legend.shape[1] // columns
    top = (row - swatch) // 2
    for i, colour in enumerate(PALETTE):
        c, r = divmod(i, rows)
        y, x = r * row + top, c * width + 4
        inside = legend[y + 1 : y + swatch - 1, x + 1 : x + swatch - 1].reshape(-1, 3)
        assert (inside == colour).all(), (i, np.unique(inside, axis=0))
        # the name is drawn to the right of the swatch: dark text pixels there
        text = legend[r * row : (r + 1) * row, x + swatch + 2 : (c + 1) * width]
        assert (text.min(axis=2) < 100).sum() > 10, NAMES[i]
    with pytest.raises(ValueError, match="palette colours"):
        palette_legend(NAMES, PALETTE[:2])


def test_normalized_confusion_matrix_rows_sum_to_one_and_absent_classes_are_nan() -> None:
    counts = np.array([[8, 2, 0], [0, 0, 0], [1, 0, 3]])  # class 1 never in the ground truth
    rows = normalize_confmat(counts, "true")
    np.testing.assert_allclose(rows[[0, 2]].sum(1), 1.0)
    np.testing.assert_allclose(rows[0], [0.8, 0.2, 0.0])
    assert np.isnan(rows[1]).all()
    cols = normalize_confmat(counts, "pred")
    np.testing.assert_allclose(cols[:, [0, 1, 2]].sum(0), 1.0)
    np.testing.assert_array_equal(normalize_confmat(counts, None), counts)
    with pytest.raises(ValueError, match="normalize"):
        normalize_confmat(counts, "rows")
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        normalize_confmat(np.zeros((2, 3)), "true")


def test_confusion_matrix_figure_shows_normalised_cells_and_names() -> None:
    counts = torch.tensor([[8, 2, 0], [0, 0, 0], [1, 0, 3]])
    fig = confusion_matrix(counts, ["a", "bb", "ccc"], normalize="true", title="t")
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    assert shown.mask[1].all() and not shown.mask[[0, 2]].any()  # NaN row drawn as "bad" (grey)
    np.testing.assert_allclose(shown.data[2], [0.25, 0.0, 0.75])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "bb", "ccc"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "bb", "ccc"]
    assert {t.get_text() for t in ax.texts} >= {"0.80", "0.20", "0.25", "0.75"}
    rgb = figure_to_array(fig)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    with pytest.raises(ValueError, match="2 class names"):
        confusion_matrix(counts, ["a", "b"])


def test_callbacks_write_sample_grid_with_legend_and_confusion_png(compose_cfg) -> None:
    cfg = compose_cfg(
        [*TINY, *tiny_shapes(), "trainer.max_steps=2", "callbacks.save_samples.num_samples=3"]
    )
    train(cfg)
    visuals = Path(cfg.paths.output_dir) / "visuals"
    assert sorted(p.name for p in visuals.iterdir()) == [
        "confusion_step000002.png",
        "val_step000002.png",
    ]
    grid = np.asarray(Image.open(visuals / "val_step000002.png").convert("RGB"))
    legend = palette_legend(cfg.data.class_names, cfg.data.palette, max_height=360)
    # three 64 px rows of image | truth | prediction (4 px gaps), the legend 4 px to the right
    assert grid.shape[1] == 3 * 64 + 4 + legend.shape[1]
    assert grid.shape[0] == max(3 * (64 + 4), legend.shape[0])
    np.testing.assert_array_equal(grid[: legend.shape[0], -legend.shape[1] :], legend)
    confusion = Image.open(visuals / "confusion_step000002.png")
    expected = confusion_matrix(np.eye(7), cfg.data.class_names).get_size_inches() * 100  # dpi
    assert confusion.format == "PNG" and confusion.size == tuple(expected.round().astype(int))
