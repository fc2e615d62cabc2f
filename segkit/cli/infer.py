"""``segkit-infer``: label maps and coloured overlays for an image or a folder of images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from segkit.api import from_clip, load
from segkit.cli._hydra import CONFIG_DIR
from segkit.data.io import read_image
from segkit.models import Segmentor
from segkit.viz import colorize_depth, overlay, palette_for

log = logging.getLogger("segkit.infer")


def read_class_names(classes: Sequence[str] | str | None) -> list[str] | None:
    """Class names from a list, or from a text file with one name per line (blank lines and
    ``#`` comments skipped)."""
    if classes is None:
        return None
    if isinstance(classes, str):
        path = Path(classes)
        if not path.is_file():
            raise FileNotFoundError(
                f"classes={classes!r}: not a file; give a list (classes='[cat,grass,sky]') or a "
                "text file with one class name per line"
            )
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        names = [line for line in lines if line]
    else:
        names = [str(c) for c in classes]
    if not names:
        raise ValueError(f"classes={classes!r} names no class")
    return names


def _model(cfg: DictConfig, classes: list[str] | None) -> Segmentor:
    if cfg.get("clip"):
        if cfg.ckpt_path:
            raise ValueError("give either ckpt_path or clip (a training-free CLIP model), not both")
        if classes is None:
            raise ValueError("clip=... segments the classes you name: add classes='[a,b,c]'")
        return from_clip(classes, cfg.clip, cfg.clip_pretrained, cfg.clip_method, device=cfg.device)
    if not cfg.ckpt_path:
        raise ValueError("ckpt_path=PATH is required (or clip=NAME for a training-free model)")
    model = load(cfg.ckpt_path, device=cfg.device, trust_config=cfg.trust_config)
    if (classes is not None or cfg.get("threshold") is not None) and not model.open_vocabulary:
        raise ValueError(
            f"{cfg.ckpt_path}: classes= and threshold= need an open-vocabulary model; this one "
            f"predicts its fixed classes {model.class_names}"
        )
    return model


def infer(cfg: DictConfig) -> list[Path]:
    """Predict every image under ``cfg.input``; returns the paths of the label maps and depth
    PNGs written."""
    classes = read_class_names(
        OmegaConf.to_container(cfg.classes)
        if OmegaConf.is_list(cfg.get("classes"))
        else cfg.get("classes")
    )
    model = _model(cfg, classes)
    if classes is not None:
        model.set_classes(classes)
    if cfg.get("threshold") is not None:
        model.heads["seg"].threshold = float(cfg.threshold)
    source = Path(cfg.input)
    if source.is_dir():
        exts = {e.lower() for e in cfg.extensions}
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in exts)
    elif source.is_file():
        images = [source]
    else:
        raise FileNotFoundError(f"input not found: {source}")
    if not images:
        raise FileNotFoundError(f"no images with extensions {list(cfg.extensions)} under {source}")
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_seg = "seg" in model.heads
    num_classes = model.heads["seg"].num_classes if has_seg else 0
    palette = palette_for(num_classes, model.palette) if has_seg else None
    flat_palette = palette.astype(np.uint8).ravel().tolist() if has_seg else []
    written = []
    for path in images:
        image = read_image(path)
        prediction = model.predict(image)[0]
        rel = path.relative_to(source) if source.is_dir() else Path(path.name)
        target = (out_dir / rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if "depth" in prediction:
            written.append(_write_depth(prediction["depth"].cpu().numpy(), target, has_seg))
            log.info("%s -> %s", path, written[-1])
        if not has_seg:
            continue
        labels = prediction["seg"].cpu().numpy()
        unmatched = labels < 0  # open vocabulary with a threshold: no class matched
        labels = np.where(unmatched, 255 if num_classes <= 255 else 65535, labels)
        if num_classes <= 255:  # palette PNG: class ids as pixel values, colours for viewers
            png = Image.fromarray(labels.astype(np.uint8), mode="P")
            png.putpalette(flat_palette + [0] * (768 - len(flat_palette)))
        else:
            png = Image.fromarray(labels.astype(np.uint16))
        png.save(target)
        if cfg.overlay:
            blended = overlay(image, np.where(unmatched, 0, labels), palette, alpha=cfg.alpha)
            blended[unmatched] = image[unmatched]  # unmatched pixels stay uncoloured
            Image.fromarray(blended).save(
                target.with_name(target.stem + "_overlay.jpg"), quality=92
            )
        written.append(target)
        log.info("%s -> %s", path, target)
    return written


def _write_depth(depth: np.ndarray, target: Path, beside_labels: bool) -> Path:
    """A 16-bit PNG of millimetres (0 = invalid, 65.535 m at most: NYU/KITTI's convention) and
    a colour-mapped preview. Returns the PNG's path."""
    path = target.with_name(target.stem + "_depth.png") if beside_labels else target
    millimetres = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(millimetres).save(path)
    Image.fromarray(colorize_depth(depth)).save(
        path.with_name(path.stem + "_preview.jpg"), quality=92
    )
    return path


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def main(cfg: DictConfig) -> None:
    infer(cfg)


if __name__ == "__main__":
    main()
