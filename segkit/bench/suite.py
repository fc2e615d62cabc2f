"""The benchmark suite: cells (model x data x metrics, from a checkpoint or a short training run),
each evaluated and timed, compared with the published figure of the same recipe.

A cell is composed from segkit's own config groups through Hydra's compose API (``experiment=``,
``model=``, ``data=`` and overrides), so each one is a real ``segkit-train`` configuration. It is
trained by :func:`segkit.cli.train.train`, evaluated by :func:`segkit.cli.evaluate.evaluate` (the
``eval`` config with the cell's data) and timed by :func:`segkit.profiling.profile_model`.

Cells run one after the other in this process, on one device. A cell whose checkpoint or data
is missing becomes a ``not run: <reason>`` row; any other error fails the cell, the report is
still written, and :class:`SuiteError` names every failed cell at the end.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from segkit.api import model_from_checkpoint, read_checkpoint
from segkit.bench.references import load_zoo, reference_for
from segkit.bench.report import Row, write_csv, write_markdown
from segkit.cli._hydra import CONFIG_DIR
from segkit.data.datasets.folder import DatasetNotFoundError
from segkit.profiling import profile_model

__all__ = ["Cell", "SuiteError", "SuiteResult", "compose_cell", "run_suite"]

log = logging.getLogger("segkit.bench")


class SuiteError(RuntimeError):
    """One or more cells failed with their inputs present (the report lists the errors)."""


@dataclass
class Cell:
    """One benchmark cell, as written under ``suite.cells.<name>``.

    ``experiment``/``model``/``data`` select config groups, ``overrides`` are further Hydra
    overrides; exactly one of ``checkpoint`` (a segkit checkpoint to evaluate; ``null`` until a
    user fills it in) and ``train`` (``{max_steps: N, overrides: [...]}``: train first) applies.
    ``infer_size``: ``[H, W]`` of the timed inference image (default: the training crop).
    """

    name: str
    experiment: str | None = None
    model: str | None = None
    data: str | None = None
    overrides: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: ["mIoU"])
    checkpoint: str | None = None
    train: dict[str, Any] | None = None
    infer_size: list[int] | None = None

    @classmethod
    def from_config(cls, name: str, node: Mapping[str, Any], metrics: Sequence[str]) -> Cell:
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = set(node) - known
        if unknown:
            raise ValueError(f"suite cell {name!r}: unknown keys {sorted(unknown)}")
        if node.get("checkpoint") is not None and node.get("train") is not None:
            raise ValueError(f"suite cell {name!r}: give either checkpoint or train, not both")
        train = dict(node["train"]) if node.get("train") is not None else None
        if train is not None and not int(train.get("max_steps", 0)) > 0:
            raise ValueError(f"suite cell {name!r}: train.max_steps must be a positive number")
        return cls(
            name=name,
            experiment=node.get("experiment"),
            model=node.get("model"),
            data=node.get("data"),
            overrides=list(node.get("overrides") or []),
            metrics=list(node.get("metrics") or metrics),
            checkpoint=node.get("checkpoint"),
            train=train,
            infer_size=list(node["infer_size"]) if node.get("infer_size") else None,
        )

    def composition(self) -> list[str]:
        """This cell's Hydra overrides of the ``train`` config."""
        groups = [f"{k}={v}" for k in ("experiment", "model", "data") if (v := getattr(self, k))]
        if self.train is None:
            return [*groups, *self.overrides]
        steps = int(self.train["max_steps"])
        # One validation at the end of the schedule writes checkpoints/last.ckpt.
        schedule = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}"]
        return [*groups, *self.overrides, *schedule, *(self.train.get("overrides") or [])]


@dataclass
class SuiteResult:
    """The rows of a suite run and where its report was written."""

    rows: list[Row]
    markdown: Path
    csv: Path


def run_suite(suite: DictConfig, paths: Mapping[str, Any]) -> SuiteResult:
    """Run every cell of ``suite`` (a ``conf/suite/*.yaml`` node) and write its report.

    ``paths``: the calling config's ``paths`` (resolved); every cell gets them, except
    ``output_dir``, which is ``suite.output_dir/cells/<name>``.
    """
    suite = OmegaConf.create(OmegaConf.to_container(suite, resolve=True))  # `now` once
    names = list(suite.cells or {})
    if suite.get("only"):
        unknown = sorted(set(suite.only) - set(names))
        if unknown:
            raise ValueError(f"suite.only names no cell of this suite: {unknown} (cells: {names})")
        names = [n for n in names if n in set(suite.only)]
    if not names:
        raise ValueError(f"suite {suite.get('name')!r} has no cells")
    cells = [Cell.from_config(n, suite.cells[n], suite.metrics) for n in names]
    zoo = load_zoo(suite.get("zoo_dir"))
    out = Path(suite.output_dir)
    rows: list[Row] = []
    failures: list[tuple[str, BaseException]] = []
    for cell in cells:
        log.info("suite cell %s", cell.name)
        try:
            rows += _run_cell(cell, suite, paths, zoo, out / "cells" / cell.name)
        except Exception as err:
            log.exception("suite cell %s failed", cell.name)
            failures.append((cell.name, err))
            message = f"failed: {type(err).__name__}: {err}".splitlines()[0]
            rows += [
                Row(cell.name, cell.model or "", cell.data or "", "", "", m, message)
                for m in cell.metrics
            ]
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    title = f"segkit benchmark suite: {suite.get('name', '')}"
    result = SuiteResult(
        rows, write_markdown(rows, suite.markdown, title), write_csv(rows, suite.csv)
    )
    log.info("suite report: %s and %s", result.markdown, result.csv)
    if failures:
        names_failed = ", ".join(name for name, _ in failures)
        raise SuiteError(
            f"{len(failures)} suite cell(s) failed: {names_failed} (report: {result.markdown})"
        ) from failures[0][1]
    return result


def compose_cell(
    cell: Cell, common: Sequence[str], paths: Mapping[str, Any], output_dir: str | Path
) -> tuple[DictConfig, dict[str, str | None]]:
    """The cell's ``train`` config (outputs in ``output_dir``) and its group choices."""
    overrides = [
        *(f"paths.{k}={_quote(v)}" for k, v in paths.items() if k != "output_dir"),
        f"paths.output_dir={_quote(output_dir)}",
        *common,
        *cell.composition(),
    ]
    cfg = _compose("train", overrides)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def _run_cell(
    cell: Cell,
    suite: DictConfig,
    paths: Mapping[str, Any],
    zoo: dict[str, dict[str, Any]],
    folder: Path,
) -> list[Row]:
    cfg, choices = compose_cell(cell, suite.common or [], paths, folder / "train")
    model_name, data_name = str(choices["model"]), str(choices["data"])
    crop = _crop(cfg, cell.name)
    infer_size = tuple(cell.infer_size or crop)
    rows = []
    for metric in cell.metrics:
        ref = reference_for(zoo, model_name, choices.get("experiment"), metric)
        rows.append(
            Row(
                cell=cell.name,
                model=model_name,
                data=data_name,
                crop=f"{crop[0]}x{crop[1]}",
                schedule=_schedule(int(cfg.trainer.max_steps)),
                metric=metric,
                reference=ref.value if ref else None,
                reference_source=ref.source if ref else "",
            )
        )
    reason = _missing_input(cell, cfg)
    if reason is not None:
        for row in rows:
            row.status = f"not run: {reason}"
        return rows
    if suite.get("dry_run"):
        for row in rows:
            row.status = "planned"
        return rows

    if cell.train is not None:
        if str(cfg.trainer.get("devices", 1)) != "1" or int(cfg.trainer.get("num_nodes", 1)) != 1:
            raise ValueError(
                "the suite trains in its own process on one device; train multi-device runs "
                "with segkit-train and give the suite their checkpoint"
            )
        from segkit.cli.train import train

        train(cfg)
        checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    else:
        checkpoint = Path(str(cell.checkpoint)).expanduser()
    metrics = _evaluate(checkpoint, cfg, suite, paths, folder / "eval")
    profile = _profile(checkpoint, cfg, suite, crop, infer_size)
    for row in rows:
        if row.metric not in metrics:
            raise KeyError(f"evaluation gave no {row.metric!r}; it gave {sorted(metrics)}")
        row.value = metrics[row.metric]
        if row.reference is not None:
            row.difference = row.value - row.reference
        row.train_img_s = profile.train_images_per_s
        row.speed_batch = profile.batch_size
        row.infer_ms = profile.inference_s * 1000 if profile.inference_s is not None else None
        row.infer_size = f"{infer_size[0]}x{infer_size[1]}"
        row.peak_mib = profile.peak_memory_mib
        row.params_m = profile.parameters / 1e6
        row.gflops = profile.gflops
        row.device = profile.device
        row.precision = str(suite.speed.precision)
    return rows


def _missing_input(cell: Cell, cfg: DictConfig) -> str | None:
    """Why the cell cannot run (no checkpoint, data not found), or None."""
    if cell.train is None:
        if cell.checkpoint is None:
            return f"no checkpoint (set suite.cells.{cell.name}.checkpoint=PATH)"
        if not Path(str(cell.checkpoint)).expanduser().is_file():
            return f"checkpoint not found: {cell.checkpoint}"
    datamodule = instantiate(cfg.data)
    try:
        for split in ("train", "val") if cell.train is not None else ("val",):
            datamodule.build(split)
    except DatasetNotFoundError as err:
        return f"data not found ({err})"
    return None


def _evaluate(
    checkpoint: Path, cfg: DictConfig, suite: DictConfig, paths: Mapping[str, Any], out: Path
) -> dict[str, float]:
    """segkit-eval's config (``conf/eval.yaml``) with the cell's data; its scalar metrics."""
    from segkit.cli.evaluate import evaluate

    overrides = [
        *(f"paths.{k}={_quote(v)}" for k, v in paths.items() if k != "output_dir"),
        f"paths.output_dir={_quote(out)}",
        f"ckpt_path={_quote(checkpoint)}",
        f"trust_config={bool(suite.get('trust_config'))}",
        *(suite.get("eval_overrides") or []),
    ]
    eval_cfg = _compose("eval", overrides)
    with open_dict(eval_cfg):
        del eval_cfg["hydra"]
        eval_cfg.data = OmegaConf.to_container(cfg.data, resolve=True)
    return evaluate(eval_cfg)


def _profile(
    checkpoint: Path,
    cfg: DictConfig,
    suite: DictConfig,
    crop: tuple[int, int],
    infer_size: tuple[int, ...],
):
    """Time the evaluated model (segkit.profiling) at the cell's crop and inference size."""
    speed = suite.speed
    device = speed.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ckpt = read_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, trust_config=bool(suite.get("trust_config"))).to(device)
    try:
        return profile_model(
            model,
            size=crop,
            infer_size=(int(infer_size[0]), int(infer_size[1])),
            batch_size=int(speed.batch_size),
            steps=int(speed.steps),
            warmup=int(speed.warmup),
            ignore_index=int(cfg.data.labels.ignore_index),
            precision=str(speed.precision),
        )
    finally:
        del model, ckpt


def _crop(cfg: DictConfig, name: str) -> tuple[int, int]:
    """The training crop ``(H, W)``: ``data.crop_size``, or a generated dataset's square size."""
    crop = cfg.data.get("crop_size")
    if crop is not None:
        return int(crop[0]), int(crop[1])
    size = OmegaConf.select(cfg, "data.train.size", default=None)
    if isinstance(size, int):
        return size, size
    raise ValueError(f"suite cell {name!r}: its data config states no crop_size")


def _schedule(steps: int) -> str:
    return f"{steps // 1000}k" if steps >= 1000 and steps % 1000 == 0 else f"{steps} steps"


def _quote(value: Any) -> str:
    """A Hydra override value in single quotes (paths with spaces, commas, ...)."""
    text = str(value).replace("'", "\\'")
    return f"'{text}'"


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    # Inside a Hydra app (segkit-bench) the global config search path is already set up;
    # elsewhere (tests, notebooks) it is set up for this call only.
    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=overrides, return_hydra_config=True)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=True)
