"""``segkit.load``: a checkpoint file -> a ready :class:`~segkit.models.Segmentor`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hydra.utils import instantiate

from segkit.models import Segmentor

if TYPE_CHECKING:
    from segkit.export.runtime import OnnxSegmentor

__all__ = [
    "SAFE_TARGET_PREFIXES",
    "UnsafeConfigError",
    "build_model",
    "check_targets",
    "from_clip",
    "load",
    "model_from_checkpoint",
    "read_checkpoint",
]

# A checkpoint's config names the classes to build. ``_target_``s outside these packages are
# refused unless the caller trusts the file: instantiating an arbitrary callable from a file
# downloaded from the internet would run code just as unpickling would.
SAFE_TARGET_PREFIXES = (
    "segkit.",
    "torch.nn.",
    "timm.",
    "functools.partial",
    "albumentations.",  # data configs: pipelines
    "kornia.augmentation.",
)


class UnsafeConfigError(ValueError):
    """A checkpoint's config names a ``_target_`` outside the trusted packages."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code runs) and check it is segkit's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files, foreign objects
        raise ValueError(
            f"cannot read checkpoint {path} with weights_only=True (truncated, not a PyTorch "
            f"file, or it holds Python objects other than tensors and plain data): {err}"
        ) from err
    if not isinstance(ckpt, dict) or "segkit" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(
            f"{path} is not a segkit checkpoint (no 'segkit' config entry); "
            "it must come from segkit-train or a segkit converter"
        )
    return ckpt


def check_targets(node: Any, trusted: bool, where: str = "model") -> None:
    """Raise :class:`UnsafeConfigError` for a ``_target_`` outside the trusted packages."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None and not trusted and not str(target).startswith(SAFE_TARGET_PREFIXES):
            raise UnsafeConfigError(
                f"checkpoint config {where}._target_ = {target!r} is outside the trusted "
                f"packages {SAFE_TARGET_PREFIXES}; pass trust_config=True only if you trust "
                "the file's author"
            )
        for key, value in node.items():
            check_targets(value, trusted, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            check_targets(value, trusted, f"{where}[{i}]")


def _offline_encoders(node: Any) -> Any:
    """Copy of a model config whose encoders download nothing: the weights come from the file."""
    if isinstance(node, Mapping):
        out = {k: _offline_encoders(v) for k, v in node.items()}
        target = str(out.get("_target_", ""))
        if target.endswith("TimmEncoder"):
            out["pretrained"] = False
            out["checkpoint"] = None
        elif target.startswith("segkit.models.openvocab.") and "pretrained" in out:
            out["pretrained"] = None  # open_clip towers: random init, then the file's weights
        return out
    if isinstance(node, list):
        return [_offline_encoders(v) for v in node]
    return node


def build_model(model_config: Mapping[str, Any], trust_config: bool = False) -> Segmentor:
    """Instantiate a segmentor from a checkpoint's model config (targets checked first).

    Nothing is downloaded or read from other files: encoders get no pretrained weights and the
    config's own ``checkpoint`` is ignored, since the weights come with the checkpoint."""
    check_targets(model_config, trust_config)
    config = dict(_offline_encoders(model_config))
    config.pop("checkpoint", None)
    return instantiate(config, _convert_="partial")


def model_from_checkpoint(ckpt: Mapping[str, Any], trust_config: bool = False) -> Segmentor:
    """The :class:`Segmentor` of a checkpoint read by :func:`read_checkpoint`, with its weights."""
    model = build_model(ckpt["segkit"]["config"]["model"], trust_config)
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"the checkpoint's weights do not fit the model in its config: missing keys "
            f"{missing[:10]}, unexpected keys {unexpected[:10]}"
        )
    return model


def load(
    path: str | Path, device: str | torch.device = "cpu", trust_config: bool = False
) -> Segmentor | OnnxSegmentor:
    """Rebuild the :class:`Segmentor` saved in ``path`` (a ``segkit-train`` checkpoint),
    with its class names and palette, in eval mode on ``device``.

    The file is read with ``weights_only=True``; the model is built from the config stored in it.
    An ``.onnx`` file written by ``segkit-export`` opens as an
    :class:`~segkit.export.runtime.OnnxSegmentor` (same ``predict``; onnxruntime on ``device``).
    """
    if Path(path).suffix.lower() == ".onnx":
        from segkit.export.runtime import OnnxSegmentor, providers_for

        return OnnxSegmentor(path, providers_for(device))
    return model_from_checkpoint(read_checkpoint(path), trust_config).to(device).eval()


def from_clip(
    classes: Sequence[str],
    clip: str = "ViT-B-16",
    pretrained: str | None = "openai",
    method: str = "clearclip",
    threshold: float | None = None,
    templates: str | Sequence[str] = "imagenet",
    overrides: Sequence[str] = (),
    device: str | torch.device = "cpu",
) -> Segmentor:
    """A training-free open-vocabulary segmenter from any open_clip ViT, with no checkpoint of ours.

    Args:
        classes: the class names (free text); change them later with ``predict(classes=...)``.
        clip: an open_clip architecture, e.g. ``"ViT-B-16"``, ``"ViT-L-14"``.
        pretrained: an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``: downloaded once,
            then cached), a local weights file, or ``None`` for random weights.
        method: ``"clearclip"``, ``"sclip"`` or ``"maskclip"`` (``conf/model/<method>.yaml``).
        threshold: pixels whose probability over ``classes`` stays below it get label -1.
        templates: prompt templates (``"imagenet"``, ``"imagenet_simple"``, ``"single"`` or a list).
        overrides: more Hydra overrides of the model config, e.g.
            ``["model.test_cfg.crop_size=[336,336]"]``.

    Example::

        model = segkit.from_clip(["cat", "grass", "sky"], clip="ViT-B-16", pretrained="openai")
        labels = model.predict("photo.jpg")[0]["seg"]   # (H, W) ids into the class list
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from segkit.cli._hydra import CONFIG_DIR

    args = [
        f"model={method}",
        f"model.encoder.name={clip}",
        f"model.encoder.pretrained={'null' if pretrained is None else pretrained}",
        *overrides,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=args)
    with open_dict(cfg):
        cfg.data.class_names = [str(c) for c in classes]
        cfg.data.palette = None
        cfg.data.test_resize = None
        cfg.model.heads.seg.threshold = threshold
        cfg.model.heads.seg.text_encoder.templates = (
            templates if isinstance(templates, str) else list(templates)
        )
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    return instantiate(model_cfg, _convert_="partial").to(device).eval()
