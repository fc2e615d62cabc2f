"""``segkit-export``: a checkpoint -> an ONNX or ``torch.export`` file, checked against PyTorch."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from segkit.api import model_from_checkpoint, read_checkpoint
from segkit.cli._hydra import CONFIG_DIR
from segkit.cli.infer import read_class_names
from segkit.export import FORMATS, ParityError, ParityReport, export_model, unexported_test_cfg

log = logging.getLogger("segkit.export")

SUFFIXES = {"onnx": ".onnx", "torch_export": ".pt2"}


def export(cfg: DictConfig) -> tuple[Path, ParityReport | None]:
    """Export ``cfg.ckpt_path`` as ``cfg.format`` to ``cfg.output``; returns the file written and
    the parity report (printed too). Raises :class:`~segkit.export.ParityError` on a mismatch."""
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r}: choose one of {list(FORMATS)}")
    if not cfg.ckpt_path:
        raise ValueError("ckpt_path=PATH is required (a segkit-train checkpoint)")
    suffix = SUFFIXES[cfg.format]
    output = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).with_suffix(suffix)
    if output.suffix != suffix:
        raise ValueError(f"output={output}: a {cfg.format} file must end with {suffix}")
    _check_writable(output.parent)
    ckpt = read_checkpoint(cfg.ckpt_path)
    model = model_from_checkpoint(ckpt, cfg.trust_config).to(cfg.device).eval()
    classes = read_class_names(
        OmegaConf.to_container(cfg.classes)
        if OmegaConf.is_list(cfg.get("classes"))
        else cfg.get("classes")
    )
    if classes is not None:
        model.set_classes(classes)  # raises for a closed-vocabulary model
    for note in unexported_test_cfg(model.test_cfg):
        msg = f"note: the export runs whole-image inference; the model's {note} is left out"
        log.warning(msg)
        print(msg)
    metadata, report = export_model(
        model,
        output,
        cfg.format,
        config=ckpt["segkit"]["config"]["model"],
        opset=int(cfg.opset),
        exporter=cfg.exporter,
        example_size=tuple(cfg.example_size),
        check_sizes=[tuple(s) for s in cfg.check_sizes or []],
        check_batch=int(cfg.check_batch),
        tolerance=float(cfg.tolerance),
        min_label_agreement=float(cfg.min_label_agreement),
    )
    size_mb = output.stat().st_size / 2**20
    print(f"wrote {output} ({metadata.exporter}, outputs {metadata.outputs}, {size_mb:.1f} MiB)")
    if report is not None:
        print(report.table())
    return output, report


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create the output folder {folder}: {err}") from err
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"the output folder {folder} is not writable")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    try:
        export(cfg)
    except (ParityError, ValueError, FileNotFoundError, PermissionError, TypeError) as err:
        print(f"segkit-export: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
