"""Convert foreign checkpoints (MMSegmentation, transformers) by renaming their keys.

A conversion spec is a config, ``conf/convert/<source>/<name>.yaml`` (``# @package _global_``;
shared parts in ``conf/convert/parts/`` join through its ``defaults``)::

    model: pspnet_r50              # the segkit model config the weights are for
    data: ade20k                   # default label space (class names, palette)
    overrides: []                  # Hydra overrides of that model config (e.g. widths)
    rules:                         # named groups, applied in order; compose them with defaults
      encoder: [['^backbone\\.', 'encoder.model.']]
      decoder: [['^decode_head\\.conv_seg\\.', 'heads.seg.conv_seg.']]
    drop:                          # source keys with no segkit counterpart (regexes)
      bn: ['num_batches_tracked$']
    allow_missing: {}              # segkit keys the source need not provide (regexes)
    before_rename: []              # callables state_dict -> state_dict (``_target_``, partial)
    after_rename: []

Every rule whose pattern matches a key rewrites it (``re.sub``, first occurrence), in order, so
a prefix rule and a rule inside a module compose. A source key that no rule matches and no
``drop`` pattern names is an error listing all such keys: nothing is silently lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from segkit.checkpoints.io import class_names_from, read_state_dict, save_checkpoint

__all__ = [
    "ConversionError",
    "ConversionSpec",
    "convert_checkpoint",
    "convert_state_dict",
    "load_spec",
]

StateDict = dict[str, Tensor]


class ConversionError(ValueError):
    """The source weights do not fit the conversion spec or the segkit model."""


@dataclass
class ConversionSpec:
    """A parsed ``conf/convert/<source>/<name>.yaml``."""

    name: str
    source: str
    model: str
    data: str = "ade20k"
    overrides: list[str] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    allow_missing: list[str] = field(default_factory=list)
    before_rename: list[Callable[[StateDict], StateDict]] = field(default_factory=list)
    after_rename: list[Callable[[StateDict], StateDict]] = field(default_factory=list)


def _config_dir() -> str:
    from segkit.cli._hydra import CONFIG_DIR

    return CONFIG_DIR


def available_specs(source: str) -> list[str]:
    """Names of the conversion specs for ``source`` (``mmseg`` or ``hf``)."""
    folder = Path(_config_dir()) / "convert" / source
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_spec(source: str, name: str, overrides: Sequence[str] = ()) -> ConversionSpec:
    """Compose ``conf/convert/<source>/<name>.yaml`` (with its defaults) into a spec."""
    if name not in available_specs(source):
        raise ConversionError(
            f"no conversion {source}/{name!r}; available: {', '.join(available_specs(source))}"
        )
    with initialize_config_dir(config_dir=_config_dir(), version_base="1.3"):
        cfg = compose(config_name=f"convert/{source}/{name}", overrides=list(overrides))
    raw = OmegaConf.to_container(cfg, resolve=True)
    if "model" not in raw:
        raise ConversionError(
            f"conf/convert/{source}/{name}.yaml has no top-level 'model' (it must start with "
            "'# @package _global_')"
        )
    rules: list[tuple[str, str]] = []
    for group, pairs in (raw.get("rules") or {}).items():
        for pair in pairs or []:
            if len(pair) != 2:
                raise ConversionError(f"{name}: rule in group {group!r} is not [pattern, repl]")
            rules.append((str(pair[0]), str(pair[1])))
    return ConversionSpec(
        name=name,
        source=source,
        model=raw["model"],
        data=raw.get("data", "ade20k"),
        overrides=list(raw.get("overrides") or []),
        rules=rules,
        drop=_patterns(raw.get("drop")),
        allow_missing=_patterns(raw.get("allow_missing")),
        before_rename=[instantiate(t) for t in raw.get("before_rename") or []],
        after_rename=[instantiate(t) for t in raw.get("after_rename") or []],
    )


def _patterns(node: Any) -> list[str]:
    """A list of regexes, or named groups of them (groups merge across composed files)."""
    if not node:
        return []
    if isinstance(node, Mapping):
        return [str(p) for group in node.values() for p in group or []]
    return [str(p) for p in node]


def convert_state_dict(state: Mapping[str, Tensor], spec: ConversionSpec) -> StateDict:
    """Rename (and transform) a source state dict into segkit's keys, by ``spec``."""
    current: StateDict = dict(state)
    for transform in spec.before_rename:
        current = transform(current)
    out: StateDict = {}
    unmatched: list[str] = []
    compiled = [(re.compile(p), r) for p, r in spec.rules]
    drops = [re.compile(p) for p in spec.drop]
    for key, value in current.items():
        if any(d.search(key) for d in drops):
            continue
        new, hit = key, False
        for pattern, repl in compiled:
            if pattern.search(new):
                new, hit = pattern.sub(repl, new, count=1), True
        if not hit:
            unmatched.append(key)
            continue
        if new in out:
            raise ConversionError(f"{spec.name}: two source keys map to {new!r} (one is {key!r})")
        out[new] = value
    if unmatched:
        raise ConversionError(
            f"{spec.name}: {len(unmatched)} source keys match no rule and no drop pattern: "
            f"{unmatched[:20]}"
        )
    for transform in spec.after_rename:
        out = transform(out)
    return out


def _source_labels(src: Path) -> tuple[list[str], Any] | None:
    """Class names (and palette) recorded in the source checkpoint, if any."""
    if src.is_dir():
        config = src / "config.json"
        if config.is_file():
            id2label = json.loads(config.read_text()).get("id2label")
            if id2label:
                return [id2label[k] for k in sorted(id2label, key=int)], None
        return None
    if src.suffix == ".safetensors":
        return None
    try:
        raw = torch.load(src, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return class_names_from(raw.get("meta")) if isinstance(raw, Mapping) else None


def model_config(
    spec: ConversionSpec, data: str | None = None, overrides: Sequence[str] = ()
) -> dict:
    """The resolved segkit model config for ``spec`` with the label space of ``data``."""
    with initialize_config_dir(config_dir=_config_dir(), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"model={spec.model}",
                f"data={data or spec.data}",
                "data.root=/none",
                *spec.overrides,
                *overrides,
            ],
        )
    return OmegaConf.to_container(cfg.model, resolve=True)


def load_converted(model: torch.nn.Module, state: StateDict, spec: ConversionSpec) -> None:
    """Load converted weights strictly, except for keys ``spec.allow_missing`` names."""
    own = model.state_dict()
    bad_shapes = [
        f"{k}: converted {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if bad_shapes:
        raise ConversionError(f"{spec.name}: shapes differ: {bad_shapes[:10]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = [re.compile(p) for p in spec.allow_missing]
    missing = [k for k in missing if not any(a.search(k) for a in allowed)]
    if missing or unexpected:
        raise ConversionError(
            f"{spec.name}: converted weights do not fit model={spec.model}: "
            f"{len(missing)} missing {missing[:10]}, {len(unexpected)} unexpected {unexpected[:10]}"
        )


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    name: str,
    source: str = "mmseg",
    data: str | None = None,
    overrides: Sequence[str] = (),
) -> Path:
    """Convert ``src`` (a file or a transformers folder) into a segkit checkpoint at ``dst``.

    The label space comes from ``data`` (a ``conf/data`` name) when given; otherwise from the
    class names recorded in ``src`` when their number fits; otherwise from the spec's ``data``.
    """
    from segkit.api import build_model

    spec = load_spec(source, name)
    src = Path(src)
    state = convert_state_dict(read_state_dict(src), spec)
    cfg = model_config(spec, data, overrides)
    has_classes = (cfg.get("heads") or {}).get("seg") is not None  # not for depth-only models
    labels = None if data or not has_classes else _source_labels(src)
    if labels is not None:
        names, palette = labels
        if cfg.get("class_names") is None or len(names) == len(cfg["class_names"]):
            cfg["class_names"] = list(names)
            if palette is not None:
                cfg["palette"] = [list(c) for c in palette]
    model = build_model(cfg)
    load_converted(model, state, spec)
    return save_checkpoint(dst, cfg, model.state_dict(), source=f"{source}:{name}:{src.name}")
