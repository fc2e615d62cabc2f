"""``segkit-infer``: label maps and coloured overlays for an image or a folder of images."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from segkit.api import load
from segkit.cli._hydra import CONFIG_DIR
from segkit.data.io import read_image
from segkit.viz import overlay, palette_for

log = logging.getLogger("segkit.infer")


def infer(cfg: DictConfig) -> list[Path]:
    """Predict every image under ``cfg.input``; returns the label-map paths written."""
    model = load(cfg.ckpt_path, device=cfg.device, trust_config=cfg.trust_config)
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
    num_classes = model.heads["seg"].num_classes
    palette = palette_for(num_classes, model.palette)
    flat_palette = palette.astype(np.uint8).ravel().tolist()
    written = []
    for path in images:
        image = read_image(path)
        labels = model.predict(image)[0]["seg"].cpu().numpy()
        rel = path.relative_to(source) if source.is_dir() else Path(path.name)
        target = (out_dir / rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if num_classes <= 256:  # palette PNG: class ids as pixel values, colours for viewers
            png = Image.fromarray(labels.astype(np.uint8), mode="P")
            png.putpalette(flat_palette + [0] * (768 - len(flat_palette)))
        else:
            png = Image.fromarray(labels.astype(np.uint16))
        png.save(target)
        if cfg.overlay:
            blended = overlay(image, labels, palette, alpha=cfg.alpha)
            Image.fromarray(blended).save(
                target.with_name(target.stem + "_overlay.jpg"), quality=92
            )
        written.append(target)
        log.info("%s -> %s", path, target)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def main(cfg: DictConfig) -> None:
    infer(cfg)


if __name__ == "__main__":
    main()
