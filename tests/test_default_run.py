"""The README's main job: `segkit-train` with no arguments learns the embedded dataset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from test_cli import run


@pytest.mark.slow
def test_default_run_reaches_the_documented_miou(tmp_path: Path) -> None:
    start = time.perf_counter()
    proc = run("segkit-train", [], tmp_path, timeout=1500)
    minutes = (time.perf_counter() - start) / 60
    assert proc.returncode == 0, proc.stderr[-3000:]
    (best,) = (tmp_path / "outputs").rglob("best-*.ckpt")
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    miou = max(
        float(v["best_model_score"]) for k, v in ckpt["callbacks"].items() if "val/mIoU" in k
    )
    print(f"default run: {minutes:.1f} min, best val mIoU {miou:.4f}")
    assert "mIoU" in proc.stdout  # the per-class table is printed
    assert miou >= 0.75
