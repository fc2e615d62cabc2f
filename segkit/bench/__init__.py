"""The benchmark suite (``segkit-bench suite=NAME``): accuracy against published figures, speed."""

from segkit.bench.references import Reference, load_zoo, reference_for
from segkit.bench.report import Row, write_csv, write_markdown
from segkit.bench.suite import Cell, SuiteError, SuiteResult, compose_cell, run_suite

__all__ = [
    "Cell",
    "Reference",
    "Row",
    "SuiteError",
    "SuiteResult",
    "compose_cell",
    "load_zoo",
    "reference_for",
    "run_suite",
    "write_csv",
    "write_markdown",
]
