"""The notebooks run top to bottom (small settings, random weights, no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, env: dict[str, str], tmp_path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def _images(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_open_vocabulary_notebook_segments_a_photo_with_free_text(tmp_path: Path) -> None:
    notebook = _run(
        "open_vocabulary.ipynb",
        {
            "SEGKIT_TINY_CLIP": "1",
            "HF_HUB_OFFLINE": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        },
        tmp_path,
    )
    assert _images(notebook) == 2, "each show() must put a figure in the notebook"
    text = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "hits + 3  misses + 1" in text  # three cached queries, one new name
    if os.environ.get("SEGKIT_KEEP_NOTEBOOKS"):
        nbformat = pytest.importorskip("nbformat")
        nbformat.write(notebook, os.environ["SEGKIT_KEEP_NOTEBOOKS"])
