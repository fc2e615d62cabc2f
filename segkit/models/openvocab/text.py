"""CLIP text tower: class names -> prompt-ensembled, L2-normalised embeddings, with a cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.openvocab.clip import clip_identity, create_clip
from segkit.models.openvocab.prompts import prompt_templates

__all__ = ["CLIPTextEncoder"]


class CLIPTextEncoder(nn.Module):
    """The text tower of an open_clip model, turning class names into query embeddings.

    Each name is put in every template; the template embeddings are L2-normalised, and
    :meth:`forward` averages and re-normalises them (the CLIP paper's prompt ensembling).

    Embeddings are cached per ``(weights, templates, name)``: a class list encodes only the names
    not seen before, and a name's embedding does not depend on the other names asked with it. The
    cache is bypassed while the tower is being trained, and entries are tied to the weights'
    version counters, so an optimiser step or a ``load_state_dict`` makes them stale.

    Args:
        name, pretrained, cache_dir, model_kwargs, quick_gelu: the open_clip model, as
            :func:`~segkit.models.openvocab.clip.create_clip`.
        templates: a template set name or list (:func:`~segkit.models.openvocab.prompts.prompt_templates`).
        finetune: ``"none"`` (frozen), ``"attention"`` (only the attention layers train, as
            CAT-Seg) or ``"all"``.
        batch_size: prompts per forward pass of the text transformer.
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        templates: str | Sequence[str] = "imagenet",
        cache_dir: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        quick_gelu: bool | None = None,
        finetune: str = "none",
        batch_size: int = 1024,
    ) -> None:
        super().__init__()
        import open_clip

        clip = create_clip(name, pretrained, cache_dir, model_kwargs, quick_gelu)
        if hasattr(clip, "visual"):
            clip.visual = None  # the image tower lives in CLIPImageEncoder
        self.clip = clip
        self.templates = prompt_templates(templates)
        self.identity = clip_identity(name, pretrained, model_kwargs)
        self.tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
        if (
            model_kwargs
            and "text_cfg" in model_kwargs
            and "context_length" in model_kwargs["text_cfg"]
        ):
            self.tokenizer.context_length = int(model_kwargs["text_cfg"]["context_length"])
        self.batch_size = batch_size
        with torch.no_grad():
            self.embed_dim = int(self.encode_prompts(["x"]).shape[-1])
        _set_trainable(self.clip, finetune)
        self._cache: dict[tuple[str, tuple[str, ...], str], tuple[tuple[int, ...], Tensor]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def logit_scale(self) -> Tensor:
        """CLIP's learned temperature, ``exp(logit_scale)`` (100 for OpenAI's models)."""
        return self.clip.logit_scale.exp()

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Sentences -> L2-normalised embeddings ``(len(prompts), D)``."""
        device = (
            self.clip.token_embedding.weight.device
            if hasattr(self.clip, "token_embedding")
            else None
        )
        out = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(list(prompts[start : start + self.batch_size]))
            if device is not None:
                tokens = tokens.to(device)
            out.append(F.normalize(self.clip.encode_text(tokens).float(), dim=-1))
        return torch.cat(out)

    def _weights_version(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.clip.parameters())

    def _training_tower(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.clip.parameters())

    def encode(self, names: Sequence[str]) -> Tensor:
        """Class names -> per-template embeddings ``(K, T, D)``, each L2-normalised."""
        names = [str(n) for n in names]
        t = len(self.templates)
        if self._training_tower():  # gradients flow to the tower: no cache
            prompts = [tpl.format(n) for n in names for tpl in self.templates]
            return self.encode_prompts(prompts).view(len(names), t, -1)
        version = self._weights_version()
        keys = [(self.identity, self.templates, n) for n in names]
        stale = {k for k in keys if k not in self._cache or self._cache[k][0] != version}
        missing = sorted(stale)
        self.misses += sum(k in stale for k in keys)
        self.hits += sum(k not in stale for k in keys)
        if missing:
            prompts = [tpl.format(k[2]) for k in missing for tpl in self.templates]
            with torch.no_grad():
                embeddings = self.encode_prompts(prompts).view(len(missing), t, -1)
            for key, value in zip(missing, embeddings):
                self._cache[key] = (version, value)
        return torch.stack([self._cache[k][1] for k in keys])

    def forward(self, names: Sequence[str]) -> Tensor:
        """Class names -> ensembled, L2-normalised embeddings ``(K, D)``."""
        return F.normalize(self.encode(names).mean(dim=1), dim=-1)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _apply(self, fn, recurse: bool = True):  # .to(device) / .half(): cached tensors are stale
        self._cache.clear()
        return super()._apply(fn, recurse)


def _set_trainable(module: nn.Module, finetune: str) -> None:
    """Freeze a CLIP tower, or leave its attention layers (or everything) trainable."""
    if finetune not in ("none", "attention", "all"):
        raise ValueError(f"finetune must be 'none', 'attention' or 'all', got {finetune!r}")
    for name, param in module.named_parameters():
        if finetune == "all":
            param.requires_grad_(True)
        elif finetune == "attention":
            param.requires_grad_(".attn." in f".{name}")
        else:
            param.requires_grad_(False)
