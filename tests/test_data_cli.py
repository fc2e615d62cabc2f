"""``segkit-data`` and custom datasets: check, browse, download on demand, colour-coded masks."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TINY
from hydra.utils import instantiate
from PIL import Image

from segkit.cli.data import main
from segkit.cli.train import train
from segkit.data import LabelError, LabelSpec

CLASSES = "data.class_names=[background,road,car]"


def _pair(root: Path, split: str, stem: str, mask: np.ndarray, image_size=None) -> None:
    h, w = image_size or mask.shape[:2]
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem))
    cv2.imwrite(
        str(root / "images" / split / f"{stem}.jpg"), rng.integers(0, 256, (h, w, 3), np.uint8)
    )
    Image.fromarray(mask.astype(np.uint8)).save(root / "labels" / split / f"{stem}.png")


def make_custom(root: Path, size: tuple[int, int] = (24, 32)) -> None:
    mask = np.zeros(size, np.uint8)
    mask[8:16, :] = 1
    mask[10:14, 4:12] = 2
    mask[:2] = 255
    for split in ("train", "val"):
        for i in range(3):
            _pair(root, split, f"{split}{i}", mask)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code), capsys.readouterr().out


def custom_args(root: Path) -> list[str]:
    return [f"data.root={root}", "data.labels.num_classes=3", CLASSES]


def test_help_lists_the_subcommands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "segkit.cli.data", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for command in ("download", "convert", "check", "browse"):
        assert command in proc.stdout


def test_check_passes_a_clean_dataset_and_prints_the_class_balance(tmp_path, capsys) -> None:
    make_custom(tmp_path / "mine")
    code, out = run_cli(["check", "custom", *custom_args(tmp_path / "mine")], capsys)
    assert code == 0, out
    assert "custom/train: 3 samples" in out and "0 problem(s)" in out
    assert "road" in out and "(ignored)" in out


def test_check_reports_every_problem_with_its_file(tmp_path, capsys) -> None:
    root = tmp_path / ("a_long_dataset_directory_name_" * 3)  # paths beyond 80 columns
    make_custom(root)
    (root / "labels" / "train" / "train0.png").unlink()  # image without label
    _pair(root, "train", "wrong_size", np.zeros((10, 10), np.uint8), image_size=(12, 10))
    _pair(root, "train", "bad_value", np.full((24, 32), 7, np.uint8))
    (root / "images" / "train" / "corrupt.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "labels" / "train" / "corrupt.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "labels" / "train" / "orphan.png")
    code, out = run_cli(["check", "custom", "--split", "train", *custom_args(root)], capsys)
    assert code == 1
    # Each path is printed whole on its line, whatever its length (copyable, never wrapped).
    assert str(root / "images" / "train" / "corrupt.jpg") in out
    assert str(root / "labels" / "train" / "wrong_size.png") in out
    out = out.replace("\n", " ")
    assert "images without label map: 1" in out and "train0.png" in out
    assert "label maps without image: 1" in out and "orphan.png" in out
    assert "unreadable files: 1" in out and "corrupt.jpg" in out
    assert "sizes differ: 1" in out and "wrong_size.png" in out
    assert "outside the label specification: 1" in out and "[7]" in out
    assert "5 problem(s)" in out


def test_browse_writes_a_grid_of_augmented_samples(compose_cfg, tmp_path, capsys) -> None:
    out_png = tmp_path / "grid.png"
    code, out = run_cli(
        [
            "browse", "shapes", "--num", "6", "--columns", "3", "--output", str(out_png),
            f"paths.cache_dir={tmp_path / 'cache'}", "data.train.num_train=8",
            "data.train.num_val=2", "data.train.size=32",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, out
    grid = cv2.imread(str(out_png))
    # 2 rows x 3 columns of (image | overlay) pairs of 32x32 cells with 4 px gaps
    assert grid.shape == (2 * 36 + 4, 3 * (2 * 32 + 4 + 8) + 4, 3)
    left, right = grid[4:36, 4:36], grid[4:36, 40:72]
    assert not np.array_equal(left, right)  # the overlay shows the mask


def test_convert_says_when_a_dataset_needs_no_conversion(capsys) -> None:
    code, out = run_cli(["convert", "ade20k", "--src", "/x", "--dst", "/y"], capsys)
    assert code == 2 and "needs no conversion" in out


def test_download_of_a_generated_dataset_is_a_no_op(tmp_path, capsys) -> None:
    args = [f"paths.cache_dir={tmp_path}", "data.train.num_train=2", "data.train.num_val=1"]
    code, out = run_cli(["download", "shapes", *args, "data.train.size=16"], capsys)
    assert code == 0 and "already in place" in out


def test_login_dataset_explains_the_manual_steps(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    code, out = run_cli(["download", "cityscapes", "--root", str(tmp_path / "cs")], capsys)
    assert code == 2 and "cityscapes-dataset.com" in out.replace("\n", "")


def test_colour_coded_masks_map_to_ids_and_unknown_colours_fail() -> None:
    spec = LabelSpec(
        3, colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]], ignore_colors=[[255, 255, 255]]
    )
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = [255, 0, 0]
    rgb[1, 2] = [0, 0, 255]
    rgb[1, 0] = [255, 255, 255]
    assert spec.apply(rgb).tolist() == [[0, 1, 0], [255, 0, 2]]
    rgb[0, 0] = [1, 2, 3]
    with pytest.raises(LabelError, match=r"\[1, 2, 3\]"):
        spec.apply(rgb, source="x.png")
    with pytest.raises(LabelError, match=r"labels\.colors"):
        LabelSpec(3).apply(rgb)


def test_custom_rgb_dataset_from_yaml_only(compose_cfg, tmp_path) -> None:
    root = tmp_path / "rgb"
    colours = {0: (0, 0, 0), 1: (128, 64, 128), 2: (0, 0, 142)}
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        ids = np.zeros((16, 16), np.uint8)
        ids[4:12, 4:12] = 1
        ids[6:8, 6:8] = 2
        rgb = np.array([colours[i] for i in range(3)], np.uint8)[ids]
        cv2.imwrite(str(root / "images" / split / "a.jpg"), np.zeros((16, 16, 3), np.uint8))
        Image.fromarray(rgb).save(root / "labels" / split / "a.png")
    cfg = compose_cfg(
        [
            "data=custom", f"data.root={root}", "data.labels.num_classes=3", CLASSES,
            "data.labels.colors=[[0,0,0],[128,64,128],[0,0,142]]", "data.num_workers=0",
        ]
    )  # fmt: skip
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup("validate")
    mask = dm.datasets["val"][0]["mask"]
    assert mask[5, 5] == 1 and mask[6, 6] == 2 and mask[0, 0] == 0


class _ZipServer(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args) -> None:
        pass


def test_train_downloads_missing_data_when_asked(compose_cfg, tmp_path) -> None:
    source = tmp_path / "src" / "mydata"
    make_custom(source, size=(64, 64))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, Path("mydata") / path.relative_to(source))
    _ZipServer.payload = buffer.getvalue()
    md5 = hashlib.md5(_ZipServer.payload).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ZipServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = tmp_path / "data"
        resource = (
            f"{{url: 'https://example.org/files/mydata.zip', md5: {md5}, strip_components: 1}}"
        )
        cfg = compose_cfg(
            [
                *TINY, "data=custom", *custom_args(root), "data.download=true",
                f"data.mirror=http://127.0.0.1:{server.server_address[1]}",
                f"data.resources=[{resource}]", "data.scale=[64,64]", "data.crop_size=[32,32]",
                "data.test_resize=[64,64]", "data.batch_size=2", "data.val_batch_size=2",
                "trainer.max_steps=2",
            ]
        )  # fmt: skip
        train(cfg)
    finally:
        server.shutdown()
    assert (root / "images" / "train" / "train0.jpg").is_file()
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()
