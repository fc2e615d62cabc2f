"""``segkit-data``: download, convert, check and browse the datasets of ``conf/data``.

Every subcommand takes a data config name (``ade20k``, ``cityscapes``, ``custom``, ...) and
optional Hydra overrides after it, e.g. ``segkit-data check custom data.root=/data/mine``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from segkit.cli._hydra import CONFIG_DIR

log = logging.getLogger("segkit.data")
console = Console(stderr=False)


def data_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed ``data=name`` config (with ``paths``), resolved."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data={name}", *overrides])
    return cfg


def _datamodule(cfg: DictConfig) -> Any:
    return instantiate(cfg.data, _convert_="partial")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if getattr(args, "root", None):
        extra.append(f"data.root={Path(args.root).expanduser().resolve()}")
    if getattr(args, "mirror", None):
        extra.append(f"data.mirror={args.mirror}")
    return extra


def _print_verbatim(text: str) -> None:
    """Prints text that holds paths: never wrapped (they stay copyable at any width), never read
    as markup."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def cmd_download(args: argparse.Namespace) -> int:
    from segkit.data.download import DownloadError, ManualDownloadRequired

    cfg = data_config(args.name, _overrides(args))
    datamodule = _datamodule(cfg)
    try:
        fetched = datamodule.fetch()
    except ManualDownloadRequired as err:
        console.print(f"[bold]{args.name} cannot be downloaded automatically.[/bold]")
        _print_verbatim(str(err))
        return 2
    except DownloadError as err:
        console.print("[red]download failed:[/red]", end=" ")
        _print_verbatim(str(err))
        return 1
    where = datamodule.root or ", ".join(str(s.root) for s in datamodule.sources.values())
    console.print(f"{args.name}: {'downloaded into' if fetched else 'already in place in'} {where}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    cfg = data_config(args.name, list(args.overrides))
    if cfg.data.get("convert") is None:
        console.print(
            f"{args.name} needs no conversion (its files are read as the publisher ships them)."
        )
        return 2
    convert = instantiate(cfg.data.convert)
    report = convert(src=Path(args.src).expanduser(), dst=Path(args.dst).expanduser(),
                     workers=args.workers)  # fmt: skip
    console.print(report)
    return 0


def _sources(datamodule: Any) -> dict[str, Any]:
    return dict(getattr(datamodule, "sources", None) or {datamodule.name or "data": datamodule})


PROBLEM_KINDS = (
    ("missing", "images without label map"),
    ("orphans", "label maps without image"),
    ("unreadable", "unreadable files"),
    ("size_mismatch", "label and image sizes differ"),
    ("bad_labels", "label values outside the label specification"),
)


def _print_report(report: Any, class_names: Sequence[str] | None, show: int) -> None:
    from segkit.data.check import report_table

    console.print(report_table(report, class_names))
    for attribute, title in PROBLEM_KINDS:
        items = getattr(report, attribute)
        if items:
            console.print(f"[red]{title}: {len(items)}[/red]")
            for item in items[:show]:
                _print_verbatim(f"  {item}")
            if len(items) > show:
                console.print(f"  ... and {len(items) - show} more")


def cmd_check(args: argparse.Namespace) -> int:
    from segkit.data.check import check_split

    cfg = data_config(args.name, _overrides(args))
    datamodule = _datamodule(cfg)
    problems = 0
    for source_name, source in _sources(datamodule).items():
        for split in args.splits or ["train", "val"]:
            factory = source.factories.get(split)
            if factory is None:
                continue
            dataset = factory(transform=None, keep_original_mask=True, strict=False)
            parts = getattr(dataset, "parts", [dataset])  # ConcatSplits: each part on its own
            for k, part in enumerate(parts):
                name = f"{source_name}/{split}" + (f"[{k}]" if len(parts) > 1 else "")
                report = check_split(part, name, workers=args.workers)
                problems += report.problems
                _print_report(report, source.class_names, args.show)
    console.print(f"[{'red' if problems else 'green'}]{args.name}: {problems} problem(s)[/]")
    return 1 if problems else 0


def cmd_browse(args: argparse.Namespace) -> int:
    import cv2

    from segkit.viz import palette_for, sample_grid

    cfg = data_config(args.name, _overrides(args))
    datamodule = _datamodule(cfg)
    if args.split == "train":
        dataset = datamodule.build("train")
    else:  # the split with its pipeline applied to the labels too (first source of a mix)
        source = next(iter(_sources(datamodule).values()))
        factory = source.factories[args.split]
        if factory is None:
            console.print(f"{args.name} has no {args.split!r} split")
            return 2
        dataset = factory(transform=source.transforms[args.split], keep_original_mask=False)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(dataset), size=min(args.num, len(dataset)), replace=False)
    samples = [dataset[(int(i), int(rng.integers(2**31 - 1)))] for i in picks]
    images = [s["image"] for s in samples]
    masks = [s.get("mask") for s in samples]
    palette = palette_for(datamodule.num_classes, datamodule.palette)
    grid = sample_grid(images, masks, palette, datamodule.ignore_index, columns=args.columns)
    output = Path(args.output or f"{args.name}_{args.split}_samples.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    console.print(f"wrote {len(samples)} {args.split} samples after the pipeline to {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segkit-data",
        description="Download, convert, check and browse datasets (configs in conf/data).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("name", help="data config name (conf/data/NAME.yaml), e.g. ade20k")
        p.set_defaults(func=func)
        return p

    p = add("download", "download (resumable, checksummed) and extract a dataset", cmd_download)
    p.add_argument("--root", help="where the dataset goes (data.root)")
    p.add_argument("--mirror", help="replace scheme and host of every URL (internal mirror)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.root=...")

    p = add("convert", "convert raw annotations to the layout the config reads", cmd_convert)
    p.add_argument("--src", required=True, help="the raw download (folder or archives)")
    p.add_argument("--dst", required=True, help="the dataset root to write (data.root)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes")
    p.add_argument("overrides", nargs="*", help="Hydra overrides")

    p = add("check", "validate a dataset: pairs, sizes, label values, class balance", cmd_check)
    p.add_argument("--root", help="data.root")
    p.add_argument(
        "--split",
        dest="splits",
        action="append",
        help="a split to check (repeatable; default train and val)",
    )
    p.add_argument("--workers", type=int, default=4, help="reader threads")
    p.add_argument("--show", type=int, default=10, help="problems listed per kind")
    p.add_argument("overrides", nargs="*", help="Hydra overrides")

    p = add("browse", "write a PNG grid of samples after the pipeline, masks overlaid", cmd_browse)
    p.add_argument("--root", help="data.root")
    p.add_argument("--split", default="train")
    p.add_argument("--num", type=int, default=16, help="number of samples")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="PNG file (default NAME_SPLIT_samples.png)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    # Overrides may come before or after the options (argparse alone stops at the first option).
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [*getattr(args, "overrides", []), *extra]
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
