"""``segkit-bench``: what one model costs, or a benchmark suite of trained models.

``segkit-bench model=NAME``: parameters, GFLOPs, training-step and inference time, peak memory of
one model with random weights. ``segkit-bench suite=NAME`` (``conf/suite/``): every cell of the
suite trained or loaded, evaluated, timed and compared with the published figure of its recipe
(:mod:`segkit.bench`); writes a Markdown table and a CSV.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from segkit.bench import SuiteResult, run_suite
from segkit.cli._hydra import CONFIG_DIR
from segkit.profiling import Profile, profile_model


def bench(cfg: DictConfig) -> Profile | SuiteResult:
    """Run ``cfg.suite`` when one is chosen (``suite=NAME``), else profile ``cfg.model``."""
    if cfg.get("suite") is not None:
        # Cells get this run's paths (cache, data, logs); each writes to its own output folder.
        paths = {k: cfg.paths[k] for k in cfg.paths if k != "output_dir"}
        result = run_suite(cfg.suite, paths)
        print(result.markdown.read_text())
        return result
    return profile_one(cfg)


def profile_one(cfg: DictConfig) -> Profile:
    """Build ``cfg.model`` with random weights and profile it by ``cfg.bench``; prints a table."""
    options = cfg.bench
    device = options.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = instantiate(cfg.model, _convert_="partial").to(device)
    profile = profile_model(
        model,
        size=tuple(options.size),
        batch_size=options.batch_size,
        steps=options.steps,
        warmup=options.warmup,
        num_classes=cfg.data.labels.num_classes,
        ignore_index=cfg.data.labels.ignore_index,
        precision=options.precision,
        train=options.train,
        infer=options.infer,
    )
    name = HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None
    name = name or cfg.model._target_
    h, w = profile.size

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    rows = [
        ("model", name),
        ("parameters", f"{profile.parameters:,} ({profile.parameters_without_aux:,} without aux)"),
        (f"GFLOPs (1x3x{h}x{w}, PyTorch count)", f"{profile.gflops:.1f}"),
        (
            f"train step (batch {profile.batch_size}, {options.precision})",
            seconds(profile.train_step_s),
        ),
        (f"inference (1 image, {options.precision})", seconds(profile.inference_s)),
        ("peak memory", f"{profile.peak_memory_mib:.0f} MiB ({profile.device})"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if options.output:
        Path(options.output).write_text(json.dumps({"model": name, **profile.as_dict()}, indent=1))
    return profile


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    main()
