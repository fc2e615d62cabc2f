"""End to end in one process: training, resuming, loading, evaluating, inferring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_shapes
from hydra.utils import instantiate
from omegaconf import open_dict
from PIL import Image

import segkit
from segkit.api import UnsafeConfigError
from segkit.cli.evaluate import evaluate
from segkit.cli.infer import infer
from segkit.cli.train import train


def _ckpt(cfg) -> Path:
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("model_name", ["segformer", "deeplabv3plus_r50"])
def test_each_model_learns_a_batch(compose_cfg, model_name: str) -> None:
    cfg = compose_cfg([f"model={model_name}"])
    torch.manual_seed(0)
    model = instantiate(cfg.model, _convert_="partial").train()
    images = torch.randint(0, 256, (2, 3, 64, 64)).float()
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 16:48, 16:48] = 3
    target[:, :, :8] = 255
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = sum(model.loss(model(images), {"mask": target}).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.fixture
def trained(compose_cfg):
    """A tiny 6-step run with a checkpoint every step; returns (cfg, val mIoU at the end)."""
    cfg = compose_cfg(
        [
            *TINY,
            *tiny_shapes(),
            "trainer.max_steps=6",
            "+callbacks.last_checkpoint.every_n_train_steps=1",
        ]
    )
    miou = train(cfg)
    return cfg, miou


def test_train_writes_checkpoint_with_config_and_load_predicts_the_same(trained) -> None:
    cfg, miou = trained
    assert miou is not None and 0.0 <= miou <= 1.0
    ckpt = torch.load(_ckpt(cfg), map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    assert ckpt["segkit"]["config"]["model"]["encoder"]["name"] == "mit_b0"
    model = segkit.load(_ckpt(cfg))
    assert model.class_names[1] == "disc" and len(model.palette) == 7
    reference = instantiate(cfg.model, _convert_="partial")
    reference.load_state_dict(
        {k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    )
    reference.eval()
    images = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8)
    ours = [p["seg"] for p in model.predict(images)]
    theirs = reference.inference(images.float())["seg"].argmax(1)
    torch.testing.assert_close(torch.stack(ours), theirs)


def test_eval_cli_reproduces_the_final_validation(trained, compose_cfg, tmp_path: Path) -> None:
    cfg, miou = trained
    eval_cfg = compose_cfg(
        [f"ckpt_path={_ckpt(cfg)}", "trainer.enable_progress_bar=false"], config_name="eval"
    )
    with open_dict(eval_cfg):
        eval_cfg.paths.output_dir = str(tmp_path / "eval")
    results = evaluate(eval_cfg)
    assert results["mIoU"] == pytest.approx(miou, abs=1e-6)
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_eval_refuses_a_checkpoint_whose_data_config_names_foreign_code(
    trained, compose_cfg, tmp_path: Path
) -> None:
    cfg, _ = trained
    ckpt = torch.load(_ckpt(cfg), map_location="cpu", weights_only=True)
    ckpt["segkit"]["config"]["data"]["_target_"] = "subprocess.call"
    torch.save(ckpt, tmp_path / "evil.ckpt")
    eval_cfg = compose_cfg([f"ckpt_path={tmp_path / 'evil.ckpt'}"], config_name="eval")
    with pytest.raises(UnsafeConfigError, match=r"data\._target_ = 'subprocess\.call'"):
        evaluate(eval_cfg)


def test_infer_cli_writes_palette_labels_and_overlays(trained, compose_cfg, tmp_path: Path) -> None:
    cfg, _ = trained
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(40, 60), (70, 50)]):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            src / f"im{i}.jpg"
        )
    infer_cfg = compose_cfg(
        [f"ckpt_path={_ckpt(cfg)}", f"input={src}", f"output={tmp_path / 'out'}"],
        config_name="infer",
    )
    written = infer(infer_cfg)
    assert [p.name for p in written] == ["im0.png", "im1.png"]
    label = Image.open(written[1])
    assert label.mode == "P" and label.size == (50, 70)
    assert np.asarray(label).max() < 7
    assert (tmp_path / "out" / "im1_overlay.jpg").is_file()


def test_resumed_run_ends_where_an_uninterrupted_one_does(compose_cfg, tmp_path: Path) -> None:
    common = [
        *TINY,
        *tiny_shapes(num_train=20),  # 5 batches per epoch: the crash falls mid-epoch
        "trainer.max_steps=8",
        "trainer.val_check_interval=3",
        "+callbacks.last_checkpoint.every_n_train_steps=1",
        "data.train_transform.transforms.0.p=0.5",
    ]
    full = compose_cfg(common)
    with open_dict(full):
        full.paths.output_dir = str(tmp_path / "full")
    train(full)

    crashed = compose_cfg(
        [*common, "+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.step=7"]
    )
    with open_dict(crashed):
        crashed.paths.output_dir = str(tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crashed)
    interrupted = torch.load(_ckpt(crashed), map_location="cpu", weights_only=True)
    assert interrupted["global_step"] == 7

    resumed = compose_cfg([*common, f"ckpt_path={tmp_path / 'resumed.ckpt'}"])
    _ckpt(crashed).rename(tmp_path / "resumed.ckpt")
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
    train(resumed)

    a = torch.load(_ckpt(full), map_location="cpu", weights_only=True)
    b = torch.load(_ckpt(resumed), map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)
    assert a["lr_schedulers"][0]["_last_lr"] == b["lr_schedulers"][0]["_last_lr"]
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()
    ):
        torch.testing.assert_close(sb["exp_avg"], sa["exp_avg"], rtol=0, atol=0)


def test_malicious_or_broken_checkpoints_are_refused(trained, tmp_path: Path) -> None:
    cfg, _ = trained
    ckpt = torch.load(_ckpt(cfg), map_location="cpu", weights_only=True)
    ckpt["segkit"]["config"]["model"]["encoder"]["_target_"] = "os.system"
    torch.save(ckpt, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeConfigError, match=r"os\.system"):
        segkit.load(tmp_path / "evil.ckpt")

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"segkit": {}, "state_dict": {}, "x": Payload()}, tmp_path / "pickle.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        segkit.load(tmp_path / "pickle.ckpt")

    data = _ckpt(cfg).read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        segkit.load(tmp_path / "truncated.ckpt")
    with pytest.raises(ValueError, match="not a segkit checkpoint"):
        torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
        segkit.load(tmp_path / "plain.ckpt")


def test_epoch_based_training(compose_cfg) -> None:
    cfg = compose_cfg(
        [
            *TINY,
            *tiny_shapes(num_train=8),
            "trainer.max_steps=-1",
            "trainer.max_epochs=2",
            "trainer.val_check_interval=1.0",
            "trainer.check_val_every_n_epoch=1",
        ]
    )
    train(cfg)
    ckpt = torch.load(_ckpt(cfg), map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4  # 2 epochs x 2 batches
    # the schedule ran over epochs x batches and reached its end
    assert ckpt["lr_schedulers"][0]["lr_lambdas"][0]["total_steps"] == 4


def test_wheel_ships_the_configs(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("segkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(root)) for p in (root / "segkit").rglob("*.py")}
    expected |= {
        "segkit/conf/" + str(p.relative_to(root / "conf")) for p in (root / "conf").rglob("*.yaml")
    }
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing[:10]}"


def test_device_augmentation_is_one_config_switch(compose_cfg) -> None:
    from segkit.data.device_augment import DeviceAugment

    cfg = compose_cfg([*TINY, *tiny_shapes(), "augment=kornia", "trainer.max_steps=2"])
    task = instantiate(cfg.task, model=instantiate(cfg.model, _convert_="partial"))
    assert isinstance(task.augment, DeviceAugment)
    assert task.augment.ignore_index == cfg.data.labels.ignore_index
    assert train(cfg) is not None  # trains and validates with the kornia pipeline on
