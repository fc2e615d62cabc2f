"""The console commands as a user runs them, each in its own process (DDP needs that too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakedata import make_ade20k, make_cityscapes

BIN = Path(sys.executable).parent
FAST = [
    "data.num_workers=0",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "schedule.warmup_steps=1",
]
SHAPES = [
    "data.train.num_train=12",
    "data.train.num_val=5",
    "data.train.size=64",
    "data.batch_size=4",
    "data.val_batch_size=2",
]


def run(
    command: str, args: list[str], tmp_path: Path, timeout: int = 300, threads: int = 2
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SEGKIT_CACHE": str(tmp_path / "cache"),
        "SEGKIT_LOGS": str(tmp_path / "outputs"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    exe = BIN / command
    cmd = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-m", f"segkit.cli.{command.split('-')[1]}"]
    )
    return subprocess.run(
        [*cmd, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout
    )


def checkpoints(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outputs").rglob("last.ckpt"))


def small_crops(scale: str, crop: tuple[int, int]) -> list[str]:
    return [
        f"data.train_transform.transforms.0.scale={scale}",
        f"data.train_transform.transforms.1.height={crop[0]}",
        f"data.train_transform.transforms.1.width={crop[1]}",
        f"data.test_resize={scale}",
        "data.batch_size=2",
        "data.val_batch_size=2",
    ]


def test_segformer_on_ade20k(tmp_path: Path) -> None:
    make_ade20k(tmp_path / "ADE", n=2)
    proc = run(
        "segkit-train",
        [
            "model=segformer",
            "data=ade20k",
            f"data.root={tmp_path / 'ADE'}",
            *FAST,
            *small_crops("[128,64]", (64, 64)),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (ckpt,) = checkpoints(tmp_path)
    assert (
        torch.load(ckpt, weights_only=True, map_location="cpu")["segkit"]["config"]["data"][
            "labels"
        ]["num_classes"]
        == 150
    )
    assert "mIoU" in proc.stdout  # the per-class table


def test_deeplabv3plus_on_cityscapes(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "cs", n=1, size=(64, 128))
    proc = run(
        "segkit-train",
        [
            "model=deeplabv3plus_r50",
            "data=cityscapes",
            f"data.root={tmp_path / 'cs'}",
            *FAST,
            *small_crops("[128,64]", (64, 64)),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(checkpoints(tmp_path)) == 1


def test_multirun_sweep(tmp_path: Path) -> None:
    proc = run("segkit-train", ["-m", "optim.lr=1e-3,1e-4", *FAST, *SHAPES], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = checkpoints(tmp_path)
    assert [c.parts[-3] for c in ckpts] == ["0", "1"]
    lrs = [torch.load(c, weights_only=True)["segkit"]["config"]["optim"]["lr"] for c in ckpts]
    assert lrs == [1e-3, 1e-4]


@pytest.mark.parametrize(
    ("override", "message"),
    [("model=segfromer", "Available options"), ("trainer.max_step=1", "not in struct")],
)
def test_config_mistakes_fail_before_training(tmp_path: Path, override: str, message: str) -> None:
    proc = run("segkit-train", [override], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "segformer" in proc.stderr or "max_step" in proc.stderr
    assert not (tmp_path / "cache").exists()  # nothing was built, nothing trained
    assert checkpoints(tmp_path) == []


def test_ddp_two_processes_train_and_evaluate_like_one(tmp_path: Path) -> None:
    """2 CPU processes (gloo): training works, one output folder; evaluating the checkpoint with
    2 processes on 5 validation images (odd: a padding sampler would count one twice) gives
    exactly the single-process metrics."""
    proc = run(
        "segkit-train",
        ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", *FAST, *SHAPES],
        tmp_path,
        threads=1,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs  # rank 1 wrote no folder of its own
    (ckpt,) = checkpoints(tmp_path)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2

    results = {}
    for devices in (1, 2):
        out = tmp_path / f"eval{devices}"
        args = [
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={out}",
            "trainer.enable_progress_bar=false",
            "trainer.accelerator=cpu",
        ]
        if devices == 2:
            args += ["trainer=ddp", "trainer.devices=2"]
        proc = run("segkit-eval", args, tmp_path, threads=1)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[devices] = json.loads((out / "metrics.json").read_text())
    for key in ("aAcc", "mIoU", "mAcc", "mDice"):
        assert results[1][key] == results[2][key], key
    assert results[1]["per_class"] == results[2]["per_class"]
