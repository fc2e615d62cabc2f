"""Converted MMSegmentation checkpoints reproduce MMSegmentation's outputs: the fixtures of
``scripts/make_mmseg_extra_fixtures.py`` (``tests/parity/mmseg_extra``).

As ``tests/test_parity_mmseg.py``; where the spec has a ``forward_seed`` (SegNeXt's NMF draws
random bases in eval mode), the global RNG is seeded with it right before the forward pass, as
on the MMSegmentation side, so both draw the same random tensors in the same order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from segkit.api import build_model
from segkit.checkpoints.convert import convert_state_dict, load_converted, load_spec, model_config

PARITY = Path(__file__).parent / "parity"
SPECS = sorted(p.stem for p in (PARITY / "mmseg_extra").glob("*.yaml"))


@pytest.mark.parametrize("name", SPECS)
def test_converted_mmseg_model_reproduces_mmseg_logits_extra(name: str) -> None:
    from test_parity_mmseg import fixture_state_dict

    full = yaml.safe_load((PARITY / "mmseg_extra" / f"{name}.yaml").read_text())
    seed, spec = full.get("forward_seed"), full["segkit"]
    fixture_path = PARITY / "fixtures" / f"{name}.pt"
    assert fixture_path.is_file(), f"run scripts/make_mmseg_extra_fixtures.py {name}"
    fixture = torch.load(fixture_path, weights_only=True)
    conversion = load_spec("mmseg", spec["convert"])
    model = build_model(model_config(conversion, spec.get("data"), spec.get("overrides", [])))
    load_converted(model, convert_state_dict(fixture_state_dict(fixture), conversion), conversion)
    model.eval()

    def run(forward_seed: int | None) -> torch.Tensor:
        with torch.no_grad(), torch.random.fork_rng():
            if forward_seed is not None:
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
