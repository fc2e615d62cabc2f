"""Hydra sweeps and launchers: ``hparams_search=optuna`` and ``hydra/launcher=submitit_*``.

Multiruns run as subprocesses (``segkit-train -m``): Hydra's multirun inside the pytest process
would share its global state with the other tests.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, tiny_shapes
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from segkit.cli._hydra import CONFIG_DIR

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
submitit_config = pytest.importorskip("hydra_plugins.hydra_submitit_launcher.config")

SEGKIT_TRAIN = Path(sys.executable).parent / "segkit-train"


def _segkit_train(args: list[str], tmp_path: Path, timeout: int) -> Path:
    """Run ``segkit-train ARGS`` with outputs under tmp_path; returns the one sweep folder."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(
        [str(SEGKIT_TRAIN), *args, f"paths.log_dir={tmp_path / 'logs'}",
         f"paths.cache_dir={tmp_path / 'cache'}"],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    return sweep


def _last_val_miou(run: Path) -> float:
    with open(run / "csv" / "metrics.csv") as f:
        values = [row["val/mIoU"] for row in csv.DictReader(f) if row.get("val/mIoU")]
    return float(values[-1])


def _override(run: Path, key: str) -> str:
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    return next(o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}="))


def test_optuna_sweep_runs_trials_and_reports_the_best(tmp_path: Path) -> None:
    sweep = _segkit_train(
        ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY, *tiny_shapes(),
         "trainer.max_steps=2"],
        tmp_path,
        timeout=600,
    )  # fmt: skip
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [t.name for t in trials] == ["0", "1"]
    lrs = [float(_override(t, "optim.lr")) for t in trials]
    assert lrs[0] != lrs[1] and all(1e-5 <= lr <= 1e-2 for lr in lrs)
    for trial, lr in zip(trials, lrs):  # the sampled value reached the run's config
        assert yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())["optim"]["lr"] == lr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    mious = [_last_val_miou(t) for t in trials]
    assert results["best_value"] == pytest.approx(max(mious), rel=1e-6)
    best = trials[mious.index(max(mious))]
    assert results["best_params"]["optim.lr"] == pytest.approx(float(_override(best, "optim.lr")))


def _slurm_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=["hydra/launcher=submitit_slurm", *overrides],
            return_hydra_config=True,
        )


def test_slurm_launcher_config_lists_every_field_of_the_plugins() -> None:
    # Our file replaces the plugin's config of the same name: a field the plugin adds must be
    # added here too.
    ours = yaml.safe_load(
        (Path(CONFIG_DIR) / "hydra" / "launcher" / "submitit_slurm.yaml").read_text()
    )
    plugin = {f.name for f in dataclasses.fields(submitit_config.SlurmQueueConf)}
    assert set(ours) == plugin


@pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")  # see the yaml
def test_slurm_job_shape_follows_the_trainer(tmp_path: Path, monkeypatch) -> None:
    """The sbatch script the plugin writes: nodes and tasks from trainer.num_nodes/devices."""
    submitit = pytest.importorskip("submitit")
    cfg = _slurm_cfg(
        ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", f"paths.log_dir={tmp_path}",
         "hydra.launcher.partition=gpu", "hydra.launcher.setup=[source venv/bin/activate]"]
    )  # fmt: skip
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"

    # submitit refuses to build a SLURM executor without srun; this one must never be run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\necho 'not a SLURM cluster' >&2\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    class Submitted(Exception):
        pass

    executors = []

    def capture(self, fn, *args):  # AutoExecutor.map_array: keep the executor, submit nothing
        executors.append(self)
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["optim.lr=0.001"]], initial_job_idx=0)
    script = executors[0]._executor._make_submission_file_text("python -m x", "uid")
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",  # Lightning's SLURMEnvironment: one task per device
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1440",
        "#SBATCH --cpus-per-task=8",
        "source venv/bin/activate",
    ):
        assert line in script.splitlines(), (line, script)


@pytest.mark.slow
def test_submitit_launcher_runs_a_training_job(tmp_path: Path) -> None:
    """``hydra/launcher=submitit_local``: the same plugin and job path as SLURM, on this machine."""
    sweep = _segkit_train(
        ["-m", "hydra/launcher=submitit_local", *TINY, *tiny_shapes(), "trainer.max_steps=2"],
        tmp_path,
        timeout=600,
    )
    assert list(sweep.glob(".submitit/*/*_result.pkl")), "submitit ran the job"
    ckpt = sweep / "0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 2


@pytest.mark.slow
def test_ddp_sweep_trials_each_start_their_processes(tmp_path: Path) -> None:
    """``-m`` with ``trainer=ddp``: Lightning starts the children of every trial, not only of the
    first (it leaves LOCAL_RANK and its process group behind after a run; ``train`` releases
    them), and the children write no sweep folder of their own."""
    sweep = _segkit_train(
        ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "trainer=ddp",
         "trainer.devices=2", "trainer.accelerator=cpu", *TINY, *tiny_shapes(),
         "trainer.max_steps=2"],
        tmp_path,
        timeout=600,
    )  # fmt: skip
    assert (sweep / "optimization_results.yaml").is_file()
    for trial in ("0", "1"):
        ckpt = sweep / trial / "checkpoints" / "last.ckpt"
        assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 2
