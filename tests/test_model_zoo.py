"""Every model config builds, trains (forward, losses, backward) and predicts at the right size.

The default run uses 128x128 inputs for models up to ``DEFAULT_LIMIT`` parameters. The slow job
runs one config per method (its first in docs/zoo) at 512x512 (at its test crop if it only takes
one input size) and the other larger configs at 128x128; ``pytest -m zoo512`` runs every config
at 512x512.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from segkit.cli._hydra import CONFIG_DIR
from segkit.profiling import count_parameters

pytestmark = pytest.mark.usefixtures("release_memory")

MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
DEFAULT_LIMIT = 80_000_000  # parameters; larger models run in the slow job only
NUM_CLASSES = 150  # ADE20K's label space


def _build(compose_cfg, name: str, *overrides: str, data: str = "ade20k") -> torch.nn.Module:
    cfg = compose_cfg([f"model={name}", f"data={data}", "data.root=/nonexistent", *overrides])
    if "openvocab" in str(cfg.model.encoder.get("_target_", "")) or "clip" in name:
        # Open-vocabulary models: random CLIP weights (no download), one prompt per class.
        cfg.model.encoder.pretrained = None
        cfg.model.heads.seg.text_encoder.templates = "single"
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="partial")


def _check(model: torch.nn.Module, size: tuple[int, int], num_classes: int = NUM_CLASSES) -> None:
    """Losses finite, every trainable parameter reached, eval outputs at the input size: class
    scores for a segmentation head, one channel of positive depth for a depth head."""
    h, w = size
    images = torch.randint(0, 256, (2, 3, h, w)).float()
    batch = {}
    if "seg" in model.heads:
        batch["mask"] = torch.randint(0, num_classes, (2, h, w))
        batch["mask"][:, : h // 8] = 255  # some ignored pixels
    if "depth" in model.heads:
        batch["depth"] = torch.rand(2, h, w) * 9 + 0.5
        batch["depth"][:, : h // 8] = 0  # some invalid pixels
    model.train()
    outputs = model(images)
    losses = model.loss(outputs, batch)
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    if any(p.requires_grad for p in model.parameters()):  # training-free models have none
        sum(losses.values()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters without gradient (DDP would fail): {unused[:10]}"
    model.eval()
    with torch.no_grad():
        out = model.inference(images[:1])
    if "seg" in model.heads:
        assert out["seg"].shape == (1, num_classes, h, w)
        assert torch.isfinite(out["seg"]).all()
    if "depth" in model.heads:
        assert out["depth"].shape == (1, 1, h, w)
        assert torch.isfinite(out["depth"]).all() and (out["depth"] >= 0).all()


@pytest.mark.parametrize("name", MODELS)
def test_model_config_trains_and_predicts(compose_cfg, name: str) -> None:
    with torch.device("meta"):
        size = sum(p.numel() for p in _build(compose_cfg, name).parameters())
    if size > DEFAULT_LIMIT:
        pytest.skip(f"{size / 1e6:.0f}M parameters: run by the slow job")
    _check(_build(compose_cfg, name), (128, 128))


def _runs_at(compose_cfg, name: str, size: tuple[int, int], *overrides: str) -> bool:
    """Whether the model takes ``size`` (checked on the meta device: costs nothing)."""
    with torch.device("meta"):
        model = _build(compose_cfg, name, *overrides).eval()
        try:
            model(torch.zeros(1, 3, *size))
        except (AssertionError, RuntimeError, ValueError):
            return False
    return True


def _representatives() -> list[str]:
    """One model config per method: the first entry of each method in docs/zoo/*.yaml."""
    import yaml

    seen: dict[str, str] = {}
    for path in sorted((Path(__file__).resolve().parents[1] / "docs" / "zoo").glob("*.yaml")):
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            seen.setdefault(entry.get("method", name), name)
    return sorted(seen.values())


REPRESENTATIVES = _representatives()


def _check_at_512(compose_cfg, name: str) -> None:
    """512x512, or the test crop for models with a fixed input size (BEiT: 640x640)."""
    size = (512, 512)
    if not _runs_at(compose_cfg, name, size):
        size = tuple(_build(compose_cfg, name).test_cfg.crop_size)
    _check(_build(compose_cfg, name), size)


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_every_method_trains_and_predicts_at_512(compose_cfg, name: str) -> None:
    _check_at_512(compose_cfg, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_large_model_configs_train_and_predict(compose_cfg, name: str) -> None:
    """The configs the default run skips for their size, at 128x128, except the methods'
    representatives, which the test above already trains at 512x512.

    Encoders built for one input size (BEiT, MAE) are rebuilt for 128x128 with
    ``model.encoder.img_size=128``.
    """
    if name in REPRESENTATIVES:
        pytest.skip("trained at 512x512 as its method's representative")
    with torch.device("meta"):
        size = sum(p.numel() for p in _build(compose_cfg, name).parameters())
    if size <= DEFAULT_LIMIT:
        pytest.skip("run by the default suite")
    overrides = () if _runs_at(compose_cfg, name, (128, 128)) else ("model.encoder.img_size=128",)
    # CAT-Seg's cost volume grows with the class count: with ADE20K's 150 classes, L/14 peaked at
    # 22 GB of the machine's 24. Cityscapes' 19 classes run the same code.
    data, num_classes = ("cityscapes", 19) if name.startswith("catseg") else ("ade20k", NUM_CLASSES)
    _check(_build(compose_cfg, name, *overrides, data=data), (128, 128), num_classes)


@pytest.mark.zoo512
@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_trains_and_predicts_at_512(compose_cfg, name: str) -> None:
    """Every variant at 512x512: ``pytest -m zoo512`` (about an hour on 2 CPU cores)."""
    _check_at_512(compose_cfg, name)


def _table_rows() -> dict[str, dict[str, str]]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "model_zoo.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[1].startswith("`") and cells[1] != "`model=`":
            rows[cells[1].strip("`")] = dict(zip(("data", "params", "mmseg", "delta"), cells[2:6]))
    return rows


def test_zoo_table_lists_every_model_with_true_parameter_counts() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from model_table import build_meta, reference_entries

    rows, entries = _table_rows(), reference_entries()
    assert set(rows) == set(MODELS), "run python scripts/model_table.py"
    for name, row in rows.items():
        total, _ = count_parameters(build_meta(name, row["data"]))
        assert f"{total:,}" == row["params"], (
            f"{name}: table says {row['params']}, model has {total:,}"
        )
        reference = entries.get(name, {}).get("mmseg_params")
        if reference and abs(total - reference) > 0.01 * reference:
            assert entries[name].get("notes"), f"{name}: {row['delta']} from MMSeg, unexplained"
