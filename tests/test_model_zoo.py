"""Every model config builds, trains (forward, losses, backward) and predicts at the right size.

The default run uses 128x128 inputs for models up to ``DEFAULT_LIMIT`` parameters; the slow job
runs every config at its native crop (512x512 unless the config's test crop says otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from segkit.cli._hydra import CONFIG_DIR

MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
DEFAULT_LIMIT = 80_000_000  # parameters; larger models run in the slow job only
NUM_CLASSES = 150  # ADE20K's label space


def _build(compose_cfg, name: str) -> torch.nn.Module:
    cfg = compose_cfg([f"model={name}", "data=ade20k", "data.root=/nonexistent"])
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="partial")


def _check(model: torch.nn.Module, size: tuple[int, int]) -> None:
    h, w = size
    images = torch.randint(0, 256, (2, 3, h, w)).float()
    target = torch.randint(0, NUM_CLASSES, (2, h, w))
    target[:, : h // 8] = 255  # some ignored pixels
    model.train()
    outputs = model(images)
    losses = model.loss(outputs, {"mask": target})
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters without gradient (DDP would fail): {unused[:10]}"
    model.eval()
    with torch.no_grad():
        scores = model.inference(images[:1])["seg"]
    assert scores.shape == (1, NUM_CLASSES, h, w)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", MODELS)
def test_model_config_trains_and_predicts(compose_cfg, name: str) -> None:
    with torch.device("meta"):
        size = sum(p.numel() for p in _build(compose_cfg, name).parameters())
    if size > DEFAULT_LIMIT:
        pytest.skip(f"{size / 1e6:.0f}M parameters: covered by the slow native-crop test")
    _check(_build(compose_cfg, name), (128, 128))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_config_trains_and_predicts_at_native_crop(compose_cfg, name: str) -> None:
    model = _build(compose_cfg, name)
    crop = tuple(model.test_cfg.crop_size or (512, 512))
    _check(model, crop)
