"""segkit-bench suite=NAME: cells trained or loaded, evaluated, timed, compared with references."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from segkit.bench import SuiteError, load_zoo, reference_for
from segkit.cli._hydra import CONFIG_DIR
from segkit.cli.bench import bench


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _table(path: Path) -> list[str]:
    """The Markdown table's body rows (header and rule left out)."""
    return [line for line in path.read_text().splitlines() if line.startswith("| ")][1:]


def test_tiny_suite_trains_evaluates_times_and_reports_every_cell(compose_cfg, tmp_path) -> None:
    missing = tmp_path / "no_such.ckpt"
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    out = tmp_path / "suite"
    cfg = compose_cfg(
        [
            "suite=tiny",
            f"suite.output_dir={out}",
            "suite.speed.steps=1",
            "suite.speed.warmup=0",
            f"+suite.cells.missing={{model: segformer, data: shapes, checkpoint: {missing}}}",
            f"+suite.cells.broken={{model: segformer, data: shapes, checkpoint: {garbage}}}",
        ],
        config_name="bench",
    )
    # A cell that fails with its inputs present fails the suite, by name, after the report.
    with pytest.raises(SuiteError, match=r"1 suite cell\(s\) failed: broken"):
        bench(cfg)

    rows = _rows(out / "suite.csv")
    assert [r["cell"] for r in rows] == ["segformer_shapes", "fastscnn_shapes", "missing", "broken"]
    assert len(_table(out / "suite.md")) == 4
    for row in rows[:2]:
        assert row["status"] == "ok" and row["metric"] == "mIoU" and row["data"] == "shapes"
        assert 0.0 <= float(row["value"]) <= 1.0
        assert row["crop"] == "64x64" and row["schedule"] == "6 steps"
        assert row["infer_size"] == "64x64" and row["speed_batch"] == "4"
        for column in ("train_img_s", "infer_ms", "peak_mib", "params_m", "gflops"):
            assert float(row[column]) > 0, column
        assert row["reference"] == row["difference"] == ""  # shapes has no published figure
        # segkit-eval's own output for the checkpoint the cell trained
        assert (out / "cells" / row["cell"] / "eval" / "metrics.json").is_file()
        assert (out / "cells" / row["cell"] / "train" / "checkpoints" / "last.ckpt").is_file()
    assert rows[0]["model"] == "segformer" and float(rows[0]["params_m"]) == pytest.approx(
        3.717, abs=1e-3
    )
    assert rows[2]["status"] == f"not run: checkpoint not found: {missing}"
    assert rows[2]["value"] == rows[2]["train_img_s"] == ""
    assert rows[3]["status"].startswith("failed: ValueError: cannot read checkpoint")


def test_every_standard_cell_composes_and_has_its_published_reference(
    compose_cfg, tmp_path
) -> None:
    cells = yaml.safe_load((Path(CONFIG_DIR) / "suite" / "standard.yaml").read_text())["cells"]
    checkpoint = tmp_path / "given.ckpt"
    checkpoint.write_bytes(b"only its existence is checked in a dry run")
    out = tmp_path / "suite"
    cfg = compose_cfg(
        [
            "suite=standard",
            "suite.dry_run=true",
            f"suite.output_dir={out}",
            f"paths.data_dir={tmp_path / 'data'}",
            f"suite.cells.deeplabv3plus_r50_cityscapes.checkpoint={checkpoint}",
        ],
        config_name="bench",
    )
    result = bench(cfg)
    rows = {r["cell"]: r for r in _rows(out / "suite.csv")}
    assert list(rows) == list(cells) and len(result.rows) == len(cells) >= 15
    for name, row in rows.items():
        assert row["reference"] and row["reference_source"].startswith("mmseg configs/"), name
        assert row["value"] == "", name
        if name != "deeplabv3plus_r50_cityscapes":
            assert (
                row["status"] == f"not run: no checkpoint (set suite.cells.{name}.checkpoint=PATH)"
            )
    dlv3p = rows["deeplabv3plus_r50_cityscapes"]
    assert dlv3p["status"].startswith("not run: data not found (dataset folder not found: ")
    assert str(tmp_path / "data" / "cityscapes") in dlv3p["status"]
    assert (dlv3p["model"], dlv3p["data"], dlv3p["crop"], dlv3p["schedule"]) == (
        "deeplabv3plus_r50",
        "cityscapes",
        "512x1024",
        "80k",
    )
    assert float(dlv3p["reference"]) == pytest.approx(0.8009)
    assert rows["unet_fcn_drive"]["metric"] == "mDice"


def test_reference_is_the_published_figure_of_the_same_recipe_only() -> None:
    zoo = load_zoo()
    ref = reference_for(zoo, "segformer_b0", "segformer_b0_ade20k_512x512_160k", "mIoU")
    assert ref is not None and ref.value == pytest.approx(0.3741)
    assert "segformer_mit-b0_8xb2-160k_ade20k-512x512" in ref.source
    assert (ref.dataset, ref.crop, ref.schedule) == ("ADE20K val", "512x512", "160k")
    # trained on other data, another recipe than the published one, a metric not published
    assert reference_for(zoo, "segformer_b0", None, "mIoU") is None
    assert (
        reference_for(zoo, "segformer_b0", "segformer_b0_cityscapes_1024x1024_160k", "mIoU") is None
    )
    assert reference_for(zoo, "segformer_b0", "segformer_b0_ade20k_512x512_160k", "mDice") is None
    assert reference_for(zoo, "no_such_model", "segformer_b0_ade20k_512x512_160k", "mIoU") is None
    with pytest.raises(FileNotFoundError, match=r"suite\.zoo_dir"):
        load_zoo(Path("/nonexistent"))
