"""The notebooks run top to bottom (small settings, random weights, no downloads)."""

from __future__ import annotations

import os
import re
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
        try:
            client.execute()
        finally:
            keep = os.environ.get("SEGKIT_KEEP_NOTEBOOKS")  # a folder: the executed notebooks
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                nbformat.write(notebook, Path(keep) / name)
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


def _text(notebook) -> str:
    """Everything the cells printed (streams and plain-text results), without colour codes."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def _fast_env(tmp_path: Path) -> dict[str, str]:
    return {
        "SEGKIT_NOTEBOOK_FAST": "1",
        "SEGKIT_CACHE": str(tmp_path / "cache"),  # the generated shapes dataset
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }


def test_quickstart_notebook_trains_evaluates_and_predicts(tmp_path: Path) -> None:
    notebook = _run("quickstart.ipynb", _fast_env(tmp_path), tmp_path)
    assert _images(notebook) == 2, "validation grid and photo overlay"
    text = _text(notebook)
    best = list(tmp_path.glob("outputs/quickstart/*/checkpoints/best-*.ckpt"))
    assert len(best) == 1, best
    assert (best[0].parent.parent / "eval" / "metrics.json").is_file()
    evaluated = float(re.search(r"val mIoU of the best checkpoint: ([0-9.]+)", text).group(1))
    assert 0.0 <= evaluated <= 1.0
    # the evaluation reproduces the validation score written into the checkpoint's name
    in_name = float(re.search(r"miou([0-9.]+)\.ckpt$", best[0].name).group(1))
    assert evaluated == pytest.approx(in_name, abs=1e-4)
    # the photo's class fractions: {'background': '97.1%', ...}
    assert re.search(r"\{'(background|disc|square|triangle|ring|cross|star)': '[0-9.]+%'", text)


@pytest.mark.slow  # about 30-60 s on 2 cores: the slow job runs it
def test_custom_dataset_notebook_checks_trains_and_predicts_from_files(tmp_path: Path) -> None:
    notebook = _run("custom_dataset.ipynb", _fast_env(tmp_path), tmp_path)
    assert _images(notebook) == 2, "the dataset preview and the predictions"
    text = _text(notebook)
    # segkit-data check (a real subprocess) names the label map saved with ids x 100; rich
    # wraps its lines (long paths anywhere), so compare without whitespace
    report = re.sub(r"\s+", "", text)
    assert "labels/train/0003.png:labelvalues[200]areoutside" in report
    assert "custom:1problem(s)" in report and "exit status 1" in text
    assert len(list(tmp_path.glob("outputs/textures/images/train/*.jpg"))) == 8
    best = list(tmp_path.glob("outputs/custom/*/checkpoints/best-*.ckpt"))
    assert len(best) == 1, best
    miou = float(re.search(r"val mIoU of the best checkpoint: ([0-9.]+)", text).group(1))
    assert 0.0 <= miou <= 1.0
    assert "['grass', 'brick', 'gravel']" in text  # class names travel in the checkpoint
    assert "same data config: True" in text  # the YAML file equals the overrides


@pytest.mark.slow  # about 30-60 s on 2 cores: the slow job runs it
def test_export_serving_notebook_exports_loads_onnx_and_serves(tmp_path: Path) -> None:
    notebook = _run("export_serving.ipynb", _fast_env(tmp_path), tmp_path)
    assert _images(notebook) == 2, "PyTorch/ONNX overlays and the served overlay"
    text = _text(notebook)
    assert len(list(tmp_path.glob("outputs/export_serving/*/model.onnx"))) == 1
    assert re.search(r"tolerance .*labels >= [0-9.]+%: OK", text)  # the parity check passed
    assert "OnnxSegmentor" in text  # segkit.load opened the .onnx file
    onnx_agree = float(re.search(r"labels agree on ([0-9.]+)% of", text).group(1))
    served_agree = float(re.search(r"served labels equal PyTorch's on ([0-9.]+)%", text).group(1))
    assert onnx_agree >= 99.9 and served_agree == 100.0
    assert "pixels per class: {" in text
    assert "segkit-serve exited with status 0" in text  # a clean shutdown on SIGTERM
