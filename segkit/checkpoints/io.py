"""Read weight files without running code, load them into models, and write segkit checkpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["load_weights_into", "read_state_dict", "save_checkpoint"]

# Entries under which other frameworks nest the weights (MMEngine: "state_dict", DeiT-style:
# "model", DDP wrappers: "module").
_NESTED = ("state_dict", "model", "module")


def _read_file(path: Path) -> Mapping[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled code, truncated file, not a torch file
        raise ValueError(
            f"cannot read {path} with weights_only=True (truncated, not a PyTorch file, or it "
            f"holds Python objects other than tensors and plain data): {err}"
        ) from err


def _read_folder(path: Path) -> dict[str, Tensor]:
    """A transformers ``save_pretrained`` folder (single or sharded, safetensors or bin)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, Tensor] = {}
            for shard in shards:
                state.update(_read_file(path / shard))
            return state
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return dict(_read_file(path / name))
    raise FileNotFoundError(
        f"{path} is a folder without model.safetensors or pytorch_model.bin "
        "(expected a transformers save_pretrained folder)"
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file or a transformers folder, read with ``weights_only=True``.

    Accepts ``.safetensors``, ``.pth``/``.pt``/``.bin``/``.ckpt`` (plain state dicts, MMEngine
    and Lightning checkpoints: the weights are taken from their ``state_dict`` entry; a segkit
    checkpoint's ``model.`` prefix is removed) and ``save_pretrained`` folders.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    data: Any = _read_file(path)
    is_segkit = isinstance(data, Mapping) and "segkit" in data
    for key in _NESTED:
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a dictionary of tensors")
    state = {k: v for k, v in data.items() if isinstance(v, Tensor)}
    if not state:
        raise ValueError(f"{path} holds no tensors (keys: {list(data)[:10]})")
    if is_segkit:
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return state


def load_weights_into(model: nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load a weights file into ``model``; with ``strict``, any missing or unexpected key or
    shape mismatch raises a ``ValueError`` that lists them."""
    state = read_state_dict(path)
    own = model.state_dict()
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(f"{path}: tensor shapes differ from the model's: {mismatched[:10]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path} does not fit the model: {len(missing)} missing keys {missing[:10]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:10]}"
        )


def save_checkpoint(
    path: str | Path,
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, Tensor],
    source: str | None = None,
) -> Path:
    """Write a checkpoint that :func:`segkit.load` opens: the weights and the model config
    (which carries the class names and palette). ``source`` records where the weights came from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "segkit": {"config": {"model": dict(model_config)}, "format": 1, "source": source},
        "state_dict": {f"model.{k}": v.detach().cpu().contiguous() for k, v in state_dict.items()},
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def class_names_from(meta: Mapping[str, Any] | None) -> tuple[Sequence[str], Any] | None:
    """(class names, palette) from an MMSegmentation checkpoint's ``meta.dataset_meta``."""
    if not meta:
        return None
    dataset_meta = meta.get("dataset_meta") or {}
    classes = dataset_meta.get("classes") or meta.get("CLASSES")
    palette = dataset_meta.get("palette") or meta.get("PALETTE")
    return (list(classes), palette) if classes else None
