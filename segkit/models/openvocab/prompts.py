"""Prompt templates: a class name becomes several sentences whose CLIP embeddings are averaged."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["prompt_templates"]


def _open_clip_templates(name: str) -> tuple[str, ...]:
    # open_clip ships the template sets of the CLIP paper as callables; we keep format strings.
    from open_clip import zero_shot_metadata

    return tuple(t("{}") for t in getattr(zero_shot_metadata, name))


def prompt_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Format strings with one ``{}`` for the class name.

    ``templates``: ``"imagenet"`` (the 80 ImageNet templates of the CLIP paper),
    ``"imagenet_simple"`` (the 7-template subset open_clip recommends), ``"single"`` (``"a photo of a {}."``), or a
    list of format strings.
    """
    if isinstance(templates, str):
        if templates == "imagenet":
            return _open_clip_templates("OPENAI_IMAGENET_TEMPLATES")
        if templates == "imagenet_simple":
            return _open_clip_templates("SIMPLE_IMAGENET_TEMPLATES")
        if templates == "single":
            return ("a photo of a {}.",)
        raise ValueError(
            f"unknown template set {templates!r}: use 'imagenet', 'imagenet_simple', 'single' "
            "or a list of format strings with one '{}'"
        )
    out = tuple(str(t) for t in templates)
    bad = [t for t in out if t.count("{}") != 1]
    if not out or bad:
        raise ValueError(f"each template needs exactly one '{{}}' for the class name: {bad or out}")
    return out
