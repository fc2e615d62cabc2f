"""Print the parameter counts of model configs as a markdown table (for docs/model_zoo.md).

    python scripts/model_table.py [--data ade20k] [model ...]

Models are built on the meta device (no memory, no weights), so even large ones take seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from segkit.cli._hydra import CONFIG_DIR


def count(model_name: str, data: str) -> tuple[int, int]:
    """(all parameters, parameters without auxiliary heads) of ``model=model_name``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model_name}", f"data={data}", "data.root=/none"])
    with torch.device("meta"):
        model = instantiate(cfg.model, _convert_="partial")
    total = sum(p.numel() for p in model.parameters())
    return total, total - sum(p.numel() for p in model.auxiliary.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model config names (default: all)")
    parser.add_argument("--data", default="ade20k", help="data config giving the class count")
    args = parser.parse_args()
    names = args.models or sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
    print(f"| model= | parameters ({args.data}) | without auxiliary heads |")
    print("|---|---:|---:|")
    for name in names:
        total, no_aux = count(name, args.data)
        print(f"| `{name}` | {total:,} | {no_aux:,} |")


if __name__ == "__main__":
    main()
