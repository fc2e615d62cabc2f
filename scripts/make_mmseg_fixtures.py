"""Make MMSegmentation parity fixtures: reduced-width models with random weights, their state
dicts, a fixed input and MMSegmentation's output, for ``tests/test_parity_mmseg.py``.

Runs in the MMSegmentation 1.2.2 reference environment (``shared/reference/mmseg/setup.sh``),
not in segkit's::

    /work/mmseg-venv/bin/python scripts/make_mmseg_fixtures.py [NAME ...]   # default: all

``--count CONFIG [CONFIG ...]`` instead prints the parameter counts (all, and without auxiliary
heads) of full-size MMSegmentation configs (paths under ``mmseg/.mim/configs``), for
``docs/zoo/*.yaml``.

Besides mmsegmentation, the environment needs mmdet 3.3.0 (MaskFormer, Mask2Former, K-Net heads)
and mmpretrain 1.2.0 (ConvNeXt, PoolFormer), installed with ``--no-deps``, plus pycocotools,
shapely, terminaltables, importlib-metadata, modelindex and einops.

Each ``tests/parity/mmseg/NAME.yaml`` names an MMSegmentation config and ``cfg_options`` that
shrink it (widths, depths) so the fixture stays small; the output goes to
``tests/parity/fixtures/NAME.pt``. Weights are random but not MMSegmentation's init (which
zeroes biases and makes logits tiny): every tensor is redrawn, BN statistics included, so a
wrong conversion cannot hide. The fixture keeps the tensors' names, shapes and seed, not their
values: ``tests/parity/random_weights.py`` redraws them identically on the test side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "parity" / "mmseg"
FIXTURES = ROOT / "tests" / "parity" / "fixtures"
SHIM = Path("/work/shared/reference/mmseg")

sys.path.insert(0, str(ROOT / "tests" / "parity"))
from random_weights import randomize  # noqa: E402  (shared with the parity tests)


def _import_mmseg():
    sys.path.insert(0, str(SHIM))
    import mmcv_shim

    mmcv_shim.install()
    import mmseg.models  # noqa: F401  (registers the models)
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    return Config, MODELS


def _plain(node):
    """SyncBN -> BN, no pretrained weights or init checkpoints (no downloads, one process)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "pretrained":
                out[key] = None
                continue
            if key == "init_cfg" and isinstance(value, dict) and value.get("type") == "Pretrained":
                out[key] = None
                continue
            out[key] = _plain(value)
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        return out
    if isinstance(node, list | tuple):
        return type(node)(_plain(v) for v in node)
    return node


def make(name: str, Config, MODELS) -> Path:
    full = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    spec, forward_seed = full["mmseg"], full.get("forward_seed")
    import mmseg
    from mmengine.config import ConfigDict

    configs = Path(mmseg.__file__).parent / ".mim" / "configs"
    cfg = Config.fromfile(str(configs / spec["config"]))
    options = {}
    for key, value in (spec.get("cfg_options") or {}).items():
        current = (
            cfg._cfg_dict
        )  # YAML has no tuples: keep a tuple a tuple (FastFCN's JPU asserts it)
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        options[key] = (
            tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
        )
    cfg.merge_from_dict(options)
    model_cfg = _plain(cfg.to_dict()["model"])
    preprocessor = model_cfg.pop("data_preprocessor", None) or {}
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(model_cfg))  # some heads read their config by attribute
    if isinstance(getattr(model, "test_cfg", None), dict):  # PointRend's PointHead does too
        model.test_cfg = ConfigDict(model.test_cfg)
    weights = randomize(model, seed=spec.get("seed", 0))
    model.eval()
    h, w = spec.get("input_size", [64, 64])
    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (1, 3, h, w), generator=g).float()  # RGB, 0-255
    mean = torch.tensor(preprocessor.get("mean", [0.0, 0.0, 0.0])).view(1, 3, 1, 1)
    std = torch.tensor(preprocessor.get("std", [1.0, 1.0, 1.0])).view(1, 3, 1, 1)
    x = (image - mean) / std
    mode = spec.get("output", "forward")
    with torch.no_grad():
        if forward_seed is not None:  # eval-time randomness (SegNeXt's NMF bases)
            torch.manual_seed(forward_seed)
        if mode == "forward":  # the decode head's raw logits, at its own stride
            out = model._forward(x)
            if isinstance(out, list | tuple):
                out = out[0]
        elif mode == "encode_decode":  # logits resized to the input
            metas = [{"img_shape": (h, w), "ori_shape": (h, w), "pad_shape": (h, w)}]
            out = model.encode_decode(x, metas)
        else:
            raise ValueError(f"{name}: unknown output mode {mode!r}")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{name}.pt"
    torch.save(
        {
            "weights": weights,  # names, shapes and seed: random_weights.rebuild() redraws them
            "input": image,
            "output": out.float(),
            "mode": mode,
            "mmseg_config": spec["config"],
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        path,
    )
    size = path.stat().st_size / 1e6
    print(
        f"{name}: {spec['config']} -> {path.relative_to(ROOT)} ({size:.2f} MB, output "
        f"{tuple(out.shape)}, |out| mean {out.abs().mean():.3f})"
    )
    return path


def count(config: str, Config, MODELS) -> tuple[int, int]:
    """(all parameters, without auxiliary heads) of a full MMSegmentation config."""
    import mmseg
    from mmengine.config import ConfigDict

    cfg = Config.fromfile(str(Path(mmseg.__file__).parent / ".mim" / "configs" / config))
    model_cfg = _plain(cfg.to_dict()["model"])
    model_cfg.pop("data_preprocessor", None)
    model = MODELS.build(ConfigDict(model_cfg))  # heads that read their config by attribute (SAN)
    total = sum(p.numel() for p in model.parameters())
    aux = getattr(model, "auxiliary_head", None)
    aux_n = sum(p.numel() for p in aux.parameters()) if aux is not None else 0
    return total, total - aux_n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="spec names (default: every spec)")
    parser.add_argument("--count", action="store_true", help="NAMES are MMSeg config paths")
    args = parser.parse_args()
    Config, MODELS = _import_mmseg()
    if args.count:
        for config in args.names:
            total, no_aux = count(config, Config, MODELS)
            print(f"{config}: {total} parameters, {no_aux} without auxiliary heads")
        return
    names = args.names or sorted(p.stem for p in SPECS.glob("*.yaml"))
    for name in names:
        make(name, Config, MODELS)


if __name__ == "__main__":
    main()
