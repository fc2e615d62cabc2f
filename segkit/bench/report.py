"""The benchmark suite's report: one row per cell and metric, as Markdown and as CSV.

The CSV holds metrics as fractions in [0, 1] (as segkit's metrics return them); the Markdown
table shows them in percent, as MMSegmentation publishes them.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["Row", "write_csv", "write_markdown"]


@dataclass
class Row:
    """One cell's result for one metric.

    ``status``: ``ok``, ``planned`` (dry run), ``not run: <reason>`` or ``failed: <error>``.
    Metric values are fractions; ``difference`` is ``value - reference``. Speed: ``train_img_s``
    images/s of one training step (``speed_batch`` images at ``crop``), ``infer_ms`` ms per
    image at ``infer_size`` (the model's test mode), ``peak_mib`` MiB (see segkit.profiling),
    ``params_m`` millions, ``gflops`` of one forward pass at ``infer_size`` (2 FLOPs per
    multiply-add).
    """

    cell: str
    model: str
    data: str
    crop: str
    schedule: str
    metric: str
    status: str = "ok"
    value: float | None = None
    reference: float | None = None
    reference_source: str = ""
    difference: float | None = None
    train_img_s: float | None = None
    speed_batch: int | None = None
    infer_ms: float | None = None
    infer_size: str = ""
    peak_mib: float | None = None
    params_m: float | None = None
    gflops: float | None = None
    device: str = ""
    precision: str = ""


def write_csv(rows: list[Row], path: str | Path) -> Path:
    """Write ``rows`` with one column per :class:`Row` field (empty cells for missing values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return path


_COLUMNS = (
    "cell",
    "model",
    "data",
    "crop",
    "schedule",
    "metric",
    "segkit (%)",
    "reference (%)",
    "difference",
    "train img/s",
    "infer ms",
    "infer size",
    "peak MiB",
    "params (M)",
    "GFLOPs",
    "status",
)


def write_markdown(rows: list[Row], path: str | Path, title: str = "") -> Path:
    """Write a Markdown table of ``rows``, then the reference figures' sources as footnotes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sources: list[str] = []
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        reference = _number(row.reference, 100, 2)
        if row.reference is not None:
            if row.reference_source not in sources:
                sources.append(row.reference_source)
            reference += f" [{sources.index(row.reference_source) + 1}]"
        cells = (
            row.cell,
            row.model,
            row.data,
            row.crop,
            row.schedule,
            row.metric,
            _number(row.value, 100, 2),
            reference,
            _number(row.difference, 100, 2, signed=True),
            _number(row.train_img_s, 1, 2),
            _number(row.infer_ms, 1, 1),
            row.infer_size,
            _number(row.peak_mib, 1, 0),
            _number(row.params_m, 1, 2),
            _number(row.gflops, 1, 2),
            row.status.replace("|", "/"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    if sources:
        lines += ["", *(f"[{i}] {s}" for i, s in enumerate(sources, 1))]
    devices = sorted({f"{r.device}, {r.precision}" for r in rows if r.device})
    if devices:
        lines += ["", f"Speed measured on: {'; '.join(devices)}."]
    path.write_text("\n".join(lines) + "\n")
    return path


def _number(value: float | None, scale: float, digits: int, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"
