"""Checkpoint conversion and loading: the tools around the parity fixtures.

The DeepLabV3+ fixture (MMSegmentation's own random-weight model, see test_parity_mmseg.py)
stands in for a downloaded MMSegmentation checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import segkit
from segkit.api import build_model
from segkit.checkpoints import ConversionError, convert_state_dict, load_spec
from segkit.checkpoints.convert import model_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import convert_mmseg  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "parity"))
from random_weights import rebuild  # noqa: E402

FIXTURE = ROOT / "tests" / "parity" / "fixtures" / "deeplabv3plus_r50.pt"
SHRINK = [
    "+model.encoder.stem_width=8",
    "+model.encoder.channels=[8,16,32,64]",
    "model.decoder.channels=32",
    "model.decoder.skip_channels=8",
    "model.auxiliary.fcn.decoder.channels=16",
]


@pytest.fixture(scope="module")
def fixture() -> dict:
    data = torch.load(FIXTURE, weights_only=True)
    return {**data, "state_dict": rebuild(data["weights"])}


def _mmseg_checkpoint(path: Path, state: dict, classes: list[str] | None = None) -> Path:
    """A file laid out like MMEngine's checkpoints (meta + state_dict)."""
    meta = {"dataset_meta": {"classes": classes, "palette": [[i, i, i] for i in range(150)]}}
    torch.save({"meta": meta if classes else {}, "state_dict": state}, path)
    return path


def test_converted_checkpoint_opens_with_segkit_load_and_keeps_the_outputs(
    tmp_path: Path, fixture: dict
) -> None:
    classes = [f"class {i}" for i in range(150)]
    src = _mmseg_checkpoint(tmp_path / "mmseg.pth", fixture["state_dict"], classes)
    dst = tmp_path / "segkit.ckpt"
    rc = convert_mmseg.main([str(src), str(dst), "--model", "deeplabv3plus_r50", *SHRINK])
    assert rc == 0 and dst.is_file()
    model = segkit.load(dst)
    assert model.class_names == classes  # from the checkpoint's dataset_meta
    assert model.palette[3] == [3, 3, 3]
    with torch.no_grad():
        out = model(fixture["input"])["seg"]
    assert (out - fixture["output"]).abs().max() <= 1e-4
    labels = model.predict(fixture["input"][0])[0]["seg"]
    assert labels.shape == fixture["input"].shape[2:]


def test_data_option_sets_the_label_space(tmp_path: Path, fixture: dict) -> None:
    src = _mmseg_checkpoint(tmp_path / "mmseg.pth", fixture["state_dict"])
    dst = tmp_path / "segkit.ckpt"
    assert convert_mmseg.main([str(src), str(dst), "--model", "deeplabv3plus_r50", *SHRINK]) == 0
    assert segkit.load(dst).class_names[:3] == ["wall", "building", "sky"]  # ADE20K


def test_unmatched_and_missing_keys_are_named(fixture: dict) -> None:
    spec = load_spec("mmseg", "deeplabv3plus_r50")
    extra = {**fixture["state_dict"], "decode_head.mystery.weight": torch.zeros(1)}
    with pytest.raises(ConversionError, match=r"decode_head\.mystery\.weight"):
        convert_state_dict(extra, spec)
    state = convert_state_dict(fixture["state_dict"], spec)
    del state["decoder.skip.conv.weight"]
    model = build_model(model_config(spec, overrides=SHRINK))
    from segkit.checkpoints.convert import load_converted

    with pytest.raises(ConversionError, match=r"decoder\.skip\.conv\.weight"):
        load_converted(model, state, spec)


def test_wrong_spec_name_lists_the_available_ones(tmp_path: Path, capsys) -> None:
    rc = convert_mmseg.main([str(tmp_path / "x.pth"), str(tmp_path / "y"), "--model", "nope"])
    assert rc == 1
    assert "deeplabv3plus_r50" in capsys.readouterr().err
    assert convert_mmseg.main(["--list"]) == 0
    assert "deeplabv3plus_r50" in capsys.readouterr().out.split()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_holding_code_or_truncated_are_refused(tmp_path: Path, fixture: dict) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": fixture["state_dict"], "x": _Payload()}, evil)
    rc = convert_mmseg.main([str(evil), str(tmp_path / "out"), "--model", "deeplabv3plus_r50"])
    assert rc == 1 and not (Path.cwd() / "pwned").exists() and not (tmp_path / "out").exists()
    good = _mmseg_checkpoint(tmp_path / "good.pth", fixture["state_dict"])
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        segkit.checkpoints.read_state_dict(cut)


def test_model_checkpoint_option_loads_weights_and_names_mismatches(
    tmp_path: Path, compose_cfg, fixture: dict
) -> None:
    from hydra.utils import instantiate

    spec = load_spec("mmseg", "deeplabv3plus_r50")
    state = convert_state_dict(fixture["state_dict"], spec)
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, weights)
    cfg = compose_cfg(
        ["model=deeplabv3plus_r50", "data=ade20k", *SHRINK, f"model.checkpoint={weights}"]
    )
    model = instantiate(cfg.model, _convert_="partial").eval()
    with torch.no_grad():
        assert (model(fixture["input"])["seg"] - fixture["output"]).abs().max() <= 1e-4
    del state["heads.seg.conv_seg.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, weights)
    with pytest.raises(Exception, match=r"missing keys \['heads\.seg\.conv_seg\.weight'\]"):
        instantiate(cfg.model, _convert_="partial")
