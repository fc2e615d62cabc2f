"""open_clip models: any architecture and pretrained tag, a local weights file, or random weights.

Both towers are built from the same call; each segkit module keeps the tower it needs
(:class:`~segkit.models.openvocab.text.CLIPTextEncoder`,
:class:`~segkit.models.openvocab.image.CLIPImageEncoder`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["PretrainedUnavailableError", "clip_identity", "create_clip"]

# Reached by every open_clip download (its weights live on the Hugging Face hub).
_HUB_HOST = ("huggingface.co", 443)


class PretrainedUnavailableError(FileNotFoundError):
    """Pretrained CLIP weights are neither cached nor downloadable (no network)."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(_HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _cached_file(cfg: Mapping[str, Any], cache_dir: str | None) -> str | None:
    """The already-downloaded weights of a pretrained tag, if any (no network access)."""
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        names = (
            [filename]
            if filename
            else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        )
        for name in names:
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found
    url = cfg.get("url", "")
    if url:
        path = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if path.is_file():
            return str(path)
    return None


def _resolve_pretrained(name: str, pretrained: str, cache_dir: str | None) -> str:
    """A file path for ``pretrained``: the path itself, or the cached download of a tag.

    A tag that is not cached is returned unchanged when the hub can be reached (open_clip then
    downloads it), and raises :class:`PretrainedUnavailableError` at once when it cannot.
    """
    import open_clip

    if Path(pretrained).expanduser().is_file():
        return str(Path(pretrained).expanduser())
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        if any(sep in pretrained for sep in ("/", "\\", ".")):
            raise FileNotFoundError(f"CLIP weights file not found: {pretrained}")
        tags = [t for m, t in open_clip.list_pretrained() if m == name]
        raise ValueError(
            f"open_clip has no pretrained tag {pretrained!r} for {name!r}; its tags: {tags} "
            "(or pass pretrained=/path/to/weights)"
        )
    cached = _cached_file(cfg, cache_dir)
    if cached:
        return cached
    if not _hub_reachable():
        where = cfg.get("hf_hub") or cfg.get("url")
        raise PretrainedUnavailableError(
            f"open_clip weights {name}/{pretrained} are not cached and the hub cannot be reached "
            f"(no network, or HF_HUB_OFFLINE=1). On a machine with internet, download them from "
            f"{where} (e.g. `huggingface-cli download {cfg.get('hf_hub', '').rstrip('/')}`), "
            f"copy the weights file here and pass pretrained=/path/to/open_clip_pytorch_model.bin "
            f"(or .safetensors)."
        )
    return pretrained


def create_clip(
    name: str,
    pretrained: str | None = None,
    cache_dir: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    quick_gelu: bool | None = None,
) -> nn.Module:
    """Build an open_clip model in eval mode.

    Args:
        name: an open_clip architecture (``open_clip.list_models()``), e.g. ``"ViT-B-16"``.
        pretrained: ``None`` (random weights), an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``;
            downloaded once, then read from the cache) or a local weights file.
        cache_dir: where open_clip caches downloads (default: the Hugging Face cache).
        model_kwargs: overrides of the architecture's config (``embed_dim``, ``vision_cfg``,
            ``text_cfg``): a tiny CLIP for tests, or a different input size.
        quick_gelu: force QuickGELU (OpenAI's weights use it; tags set it themselves, a weights
            file of OpenAI's needs ``True`` or a ``-quickgelu`` architecture name).
    """
    import open_clip

    kwargs: dict[str, Any] = dict(model_kwargs or {})
    # open_clip moves the model to ``device`` (default cpu); keep the current default device so
    # that building under ``torch.device("meta")`` (parameter and FLOP counts) allocates nothing.
    kwargs["device"] = torch.empty(0).device
    if quick_gelu is not None:
        kwargs["force_quick_gelu"] = quick_gelu
    if pretrained:
        path = _resolve_pretrained(name, pretrained, cache_dir)
        if Path(path).is_file() and not open_clip.get_pretrained_cfg(name, pretrained):
            # A user's file: open_clip's own loader (weights_only) with strict key checking.
            model = open_clip.create_model(name, pretrained=None, **kwargs)
            try:
                open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
            except RuntimeError as err:
                raise ValueError(f"{path} does not hold {name} CLIP weights: {err}") from err
            return model.eval()
        if Path(path).is_file():  # a cached download of a tag: keep the tag's settings
            tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
            if tag_cfg.get("quick_gelu") and "force_quick_gelu" not in kwargs:
                kwargs["force_quick_gelu"] = True
            model = open_clip.create_model(name, pretrained=None, **kwargs)
            open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
            return model.eval()
        return open_clip.create_model(name, pretrained=path, cache_dir=cache_dir, **kwargs).eval()
    return open_clip.create_model(name, pretrained=None, **kwargs).eval()


def clip_identity(name: str, pretrained: str | None, model_kwargs: Mapping[str, Any] | None) -> str:
    """A string naming the weights (cache key): architecture, weights and config overrides."""
    extra = "" if not model_kwargs else f"+{sorted(dict(model_kwargs).items())}"
    return f"{name}/{pretrained or 'random'}{extra}"
