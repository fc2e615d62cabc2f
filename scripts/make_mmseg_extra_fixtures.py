"""MMSegmentation parity fixtures that ``scripts/make_mmseg_fixtures.py`` cannot make yet:
models that draw random numbers in eval mode (SegNeXt's NMF bases: the global RNG is seeded with
the spec's ``forward_seed`` right before the forward pass, and the test seeds it identically) and
heads that read ``test_cfg`` attributes (PointRend: ``test_cfg`` becomes a ``ConfigDict``).

    /work/mmseg-venv/bin/python scripts/make_mmseg_extra_fixtures.py [NAME ...]

Specs: ``tests/parity/mmseg_extra/NAME.yaml`` (the format of ``tests/parity/mmseg``, plus an
optional top-level ``forward_seed``); fixtures: ``tests/parity/fixtures/NAME.pt`` (same format);
test: ``tests/test_parity_mmseg_extra.py``. Everything else is ``make_mmseg_fixtures``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_mmseg_fixtures as base

SPECS = base.ROOT / "tests" / "parity" / "mmseg_extra"


def make(name: str, Config, MODELS) -> Path:
    import mmseg
    from mmengine.config import ConfigDict

    full = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    seed, spec = full.get("forward_seed"), full["mmseg"]
    cfg = Config.fromfile(str(Path(mmseg.__file__).parent / ".mim" / "configs" / spec["config"]))
    cfg.merge_from_dict(spec.get("cfg_options") or {})
    model_cfg = base._plain(cfg.to_dict()["model"])
    preprocessor = model_cfg.pop("data_preprocessor", None) or {}
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    if isinstance(getattr(model, "test_cfg", None), dict):
        model.test_cfg = ConfigDict(model.test_cfg)
    weights = base.randomize(model, seed=spec.get("seed", 0))
    model.eval()
    h, w = spec.get("input_size", [64, 64])
    image = torch.randint(0, 256, (1, 3, h, w), generator=torch.Generator().manual_seed(1)).float()
    mean = torch.tensor(preprocessor.get("mean", [0.0, 0.0, 0.0])).view(1, 3, 1, 1)
    std = torch.tensor(preprocessor.get("std", [1.0, 1.0, 1.0])).view(1, 3, 1, 1)
    x = (image - mean) / std
    mode = spec.get("output", "forward")
    with torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        if mode == "forward":
            out = model._forward(x)
            out = out[0] if isinstance(out, list | tuple) else out
        else:
            metas = [{"img_shape": (h, w), "ori_shape": (h, w), "pad_shape": (h, w)}]
            out = model.encode_decode(x, metas)
    path = base.FIXTURES / f"{name}.pt"
    torch.save(
        {
            "weights": weights,
            "input": image,
            "output": out.float(),
            "mode": mode,
            "forward_seed": seed,
            "mmseg_config": spec["config"],
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        path,
    )
    print(
        f"{name}: {path.relative_to(base.ROOT)} ({path.stat().st_size / 1e6:.2f} MB, output "
        f"{tuple(out.shape)}, |out| mean {out.abs().mean():.3f})"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="spec names (default: every spec)")
    args = parser.parse_args()
    Config, MODELS = base._import_mmseg()
    for name in args.names or sorted(p.stem for p in SPECS.glob("*.yaml")):
        make(name, Config, MODELS)


if __name__ == "__main__":
    main()
