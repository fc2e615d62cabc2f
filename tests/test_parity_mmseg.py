"""Converted MMSegmentation checkpoints reproduce MMSegmentation's outputs.

Each ``tests/parity/mmseg/NAME.yaml`` pairs an MMSegmentation config (shrunk) with the segkit
conversion spec and model overrides; ``scripts/make_mmseg_fixtures.py`` ran MMSegmentation 1.2.2
on random weights and committed the state dict, input and output as
``tests/parity/fixtures/NAME.pt``. A spec's top-level ``forward_seed`` seeds the global RNG
before the forward pass on both sides, for models that draw random numbers in eval mode. Here the state dict goes through segkit's converter into the
segkit model, which must give the same logits (fp32, eval mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from segkit.api import build_model
from segkit.checkpoints.convert import convert_state_dict, load_converted, load_spec, model_config

PARITY = Path(__file__).parent / "parity"
sys.path.insert(0, str(PARITY))

from random_weights import rebuild  # noqa: E402


def fixture_state_dict(fixture: dict) -> dict[str, torch.Tensor]:
    """MMSegmentation's state dict of a fixture (redrawn from names, shapes and seed)."""
    return fixture["state_dict"] if "state_dict" in fixture else rebuild(fixture["weights"])


SPECS = sorted(p.stem for p in (PARITY / "mmseg").glob("*.yaml"))


@pytest.mark.parametrize("name", SPECS)
def test_converted_mmseg_model_reproduces_mmseg_logits(name: str) -> None:
    full = yaml.safe_load((PARITY / "mmseg" / f"{name}.yaml").read_text())
    spec, seed = full["segkit"], full.get("forward_seed")
    fixture_path = PARITY / "fixtures" / f"{name}.pt"
    assert fixture_path.is_file(), f"run scripts/make_mmseg_fixtures.py {name}"
    fixture = torch.load(fixture_path, weights_only=True)
    conversion = load_spec("mmseg", spec["convert"])
    model = build_model(model_config(conversion, spec.get("data"), spec.get("overrides", [])))
    load_converted(model, convert_state_dict(fixture_state_dict(fixture), conversion), conversion)
    model.eval()

    def run(forward_seed: int | None) -> torch.Tensor:
        with torch.no_grad(), torch.random.fork_rng():
            if forward_seed is not None:  # eval-time randomness (SegNeXt's NMF bases)
                torch.manual_seed(forward_seed)
            if fixture["mode"] == "forward":
                return model(fixture["input"])["seg"]
            return model.inference(fixture["input"])["seg"]

    out = run(seed)
    expected = fixture["output"]
    assert out.shape == expected.shape
    assert expected.abs().mean() > 1e-2, "fixture logits are degenerate"
    if seed is not None:  # other random draws must change the output, or nothing is tested
        assert (run(seed + 1) - expected).abs().max() > 1e-4, "the seed has no effect"
    diff = (out - expected).abs().max().item()
    assert diff <= spec.get("atol", 1e-4), f"max abs difference {diff:.2e}"
