"""Open-vocabulary benchmarks: ADE-847 and PC-459 converters (16-bit labels), VOC-20, class lists.

Each converter runs on a tiny tree in its publisher's layout made here; the converted files are
then read through the real data config, pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fakedata import make_voc
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from segkit.cli._hydra import CONFIG_DIR
from segkit.cli.data import main
from segkit.data.convert.ade20k_full import ADE20K_FULL_IDS, decode_ade_classes
from segkit.data.convert.pascal_context import CONTEXT_IDS
from segkit.data.convert.pascal_context_459 import convert_pascal_context_459
from segkit.metrics import SegMetrics

DATA_DIR = Path(CONFIG_DIR) / "data"
IGNORE = 65535

# The COCO-Stuff 156/15 zero-shot split (SPNet / ZegFormer): the 15 unseen classes.
COCO_UNSEEN = [
    "frisbee", "skateboard", "cardboard", "carrot", "scissors", "suitcase", "giraffe", "cow",
    "road", "wall-concrete", "tree", "grass", "river", "clouds", "playingfield",
]  # fmt: skip


def _names(name: str) -> list[str]:
    return list(OmegaConf.load(DATA_DIR / f"{name}.yaml")["class_names"])


def _read_split(compose_cfg: Callable, name: str, root: Path, split: str = "val"):
    cfg = compose_cfg([f"data={name}", f"data.root={root}", "data.num_workers=0"])
    dm = instantiate(cfg.data)
    dataset = dm.factories[split](transform=None, keep_original_mask=True)
    return dm, dataset


# --------------------------------------------------------------------------- class lists
@pytest.mark.parametrize(("name", "count"), [("ade20k_full", 847), ("pascal_context_459", 459)])
def test_class_lists_are_complete_and_unique(name: str, count: int) -> None:
    names = _names(name)
    assert len(names) == len(set(names)) == count
    assert all(n == n.strip() and n for n in names)


def test_pc459_names_agree_with_the_59_class_subset() -> None:
    # CONTEXT_IDS (from MMSegmentation's mapping) gives each PC-59 class's id in the 459 list.
    full, sub = _names("pascal_context_459"), _names("pascal_context")
    assert [full[i - 1] for i in CONTEXT_IDS[1:]] == sub


def test_ade847_ids_pair_with_names() -> None:
    names = _names("ade20k_full")
    assert len(ADE20K_FULL_IDS) == len(set(ADE20K_FULL_IDS.tolist())) == len(names)
    # a few (id, name) pairs of the reference list
    for train_id, release_id, name in [(0, 2978, "wall"), (7, 165, "bed"), (846, 3148, None)]:
        assert ADE20K_FULL_IDS[train_id] == release_id
        if name:
            assert names[train_id] == name
    assert names[846].startswith("adding machine")


def test_coco_stuff_unseen_split_names_exist() -> None:
    names = _names("coco_stuff164k")
    assert len(COCO_UNSEEN) == 15 and set(COCO_UNSEEN) <= set(names)


# --------------------------------------------------------------------------- ADE-847
def _ade_seg(classes: np.ndarray) -> np.ndarray:
    """Encode release class ids as the release's *_seg.png (R = id // 256 * 10, G = id % 256)."""
    seg = np.zeros((*classes.shape, 3), np.uint8)
    seg[..., 0] = (classes // 256) * 10 + 3  # + 3: the decoder must floor R / 10
    seg[..., 1] = classes % 256
    seg[..., 2] = 77  # instance channel: not read
    return seg


def _make_ade_release(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    # ids: wall (train id 0), a class with train id > 255, the last class, 0 (unlabelled) and an
    # id outside the 847 (5 is not in the list)
    values = np.array([2978, ADE20K_FULL_IDS[300], 3148, 0, 5])
    assert 5 not in ADE20K_FULL_IDS
    images = {
        "training/urban/street/ADE_train_00000001": (20, 30),
        "validation/home/kitchen/ADE_val_00000001": (24, 18),
        "validation/home/ADE_val_00000002": (600, 520),  # shorter side > 512: resized
    }
    classes_of = {}
    for rel, size in images.items():
        path = root / "images" / "ADE" / f"{rel}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        classes = values[rng.integers(0, len(values), size)]
        classes[0, 0] = ADE20K_FULL_IDS[300]
        Image.fromarray(_ade_seg(classes)).save(path.with_name(f"{path.stem}_seg.png"))
        (path.parent / path.stem).mkdir()  # the release's per-image instance folder
        classes_of[path.stem] = classes
    return classes_of


def _ade_expected(classes: np.ndarray) -> np.ndarray:
    lookup = {int(v): k for k, v in enumerate(ADE20K_FULL_IDS)}
    return np.vectorize(lambda v: lookup.get(int(v), IGNORE))(classes)


def test_ade_seg_decoding() -> None:
    classes = np.array([[0, 255, 256, 3148]])
    np.testing.assert_array_equal(decode_ade_classes(_ade_seg(classes)), classes)


def test_ade20k_full_convert_and_read(tmp_path: Path, compose_cfg: Callable, capsys) -> None:
    src, dst = tmp_path / "ADE20K_2021_17_01", tmp_path / "converted"
    classes_of = _make_ade_release(src, np.random.default_rng(0))
    with pytest.raises(SystemExit) as exit_info:  # the CLI, as a user runs it
        main(["convert", "ade20k_full", "--src", str(tmp_path), "--dst", str(dst),
              "--workers", "1"])  # fmt: skip
    assert exit_info.value.code == 0
    assert "written=4" in capsys.readouterr().out

    big = dst / "annotations_detectron2" / "validation" / "ADE_val_00000002.tif"
    with Image.open(big) as im:
        assert im.mode == "I;16" and im.size == (512, 591)  # (w, h): 520 -> 512, 600 -> 591
    dm, dataset = _read_split(compose_cfg, "ade20k_full", dst)
    assert dm.ignore_index == IGNORE and dm.num_classes == 847
    assert len(dataset) == 2
    for index, stem in enumerate(["ADE_val_00000001", "ADE_val_00000002"]):
        sample = dataset[index]
        expected = _ade_expected(classes_of[stem])
        if stem.endswith("2"):  # nearest-neighbour resize, as the reference
            expected = cv2.resize(expected.astype(np.int32), (512, 591),
                                  interpolation=cv2.INTER_NEAREST)  # fmt: skip
        assert sample["image"].shape[:2] == sample["mask"].shape
        np.testing.assert_array_equal(sample["mask"], expected)
        assert sample["mask"][0, 0] == 300  # a class id above 255 survives
        assert {0, 846, IGNORE} <= set(np.unique(sample["mask"]).tolist())
    assert not (dst / "images_detectron2" / "training").exists()  # validation by default


def test_ade20k_full_training_on_request(tmp_path: Path) -> None:
    from segkit.data.convert.ade20k_full import convert_ade20k_full

    _make_ade_release(tmp_path / "rel", np.random.default_rng(1))
    report = convert_ade20k_full(tmp_path / "rel", tmp_path / "out", workers=1,
                                 splits=["training", "validation"])  # fmt: skip
    assert report.written == 6
    assert [
        p.name for p in (tmp_path / "out" / "annotations_detectron2" / "training").iterdir()
    ] == ["ADE_train_00000001.tif"]
    with pytest.raises(ValueError, match="splits"):
        convert_ade20k_full(tmp_path / "rel", tmp_path / "out", splits=["val"])


# --------------------------------------------------------------------------- PC-459
def _make_pcontext_full(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from scipy.io import savemat

    voc = root / "VOCdevkit" / "VOC2010"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (root / "trainval").mkdir()
    (voc / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n2008_000099\n")
    # 2008_000003 has no .mat: VOC lists it, PASCAL-Context does not annotate it
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n2008_000003\n2008_000004\n")
    (root / "labels.txt").write_text(
        "1: accordion\n2: aeroplane\n65: cat\n284: person\n458: wood\n"
    )
    maps = {}
    for stem in ("2008_000001", "2008_000002", "2008_000004"):
        size = (12, 20)
        image = voc / "JPEGImages" / f"{stem}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        label_map = rng.choice(np.array([0, 1, 2, 256, 300, 459], np.uint16), size)
        savemat(root / "trainval" / f"{stem}.mat", {"LabelMap": label_map})
        maps[stem] = label_map
    return maps


def test_pascal_context_459_convert_and_read(tmp_path: Path, compose_cfg: Callable) -> None:
    maps = _make_pcontext_full(tmp_path, np.random.default_rng(2))
    dst = tmp_path / "VOCdevkit" / "VOC2010"
    report = convert_pascal_context_459(tmp_path, dst, workers=1)
    assert report.written == 2
    listing = dst / "ImageSets" / "SegmentationContext" / "val.txt"
    assert listing.read_text() == "2008_000002\n2008_000004\n"
    assert not (dst / "annotations_detectron2" / "pc459_train").exists()  # val only by default

    dm, dataset = _read_split(compose_cfg, "pascal_context_459", dst)
    assert dm.ignore_index == IGNORE and dm.num_classes == 459 and len(dataset) == 2
    for index, stem in enumerate(["2008_000002", "2008_000004"]):
        raw = maps[stem].astype(np.int64)
        expected = np.where(raw == 0, IGNORE, raw - 1)
        np.testing.assert_array_equal(dataset[index]["mask"], expected)
    assert dm.class_names[1] == "aeroplane" and dm.class_names[458] == "wool"

    # a second run finds everything in place; train on request uses the same rule
    again = convert_pascal_context_459(tmp_path, dst, workers=1, splits=["train", "val"])
    assert again.skipped == 2 and again.written == 1


def test_pascal_context_459_rejects_foreign_label_files(tmp_path: Path) -> None:
    _make_pcontext_full(tmp_path, np.random.default_rng(3))
    (tmp_path / "labels.txt").write_text("1: accordion\n2: airplane\n")
    with pytest.raises(ValueError, match="459-class"):
        convert_pascal_context_459(tmp_path, tmp_path / "out", workers=1)


def test_pascal_context_459_rejects_out_of_range_ids(tmp_path: Path) -> None:
    from scipy.io import savemat

    _make_pcontext_full(tmp_path, np.random.default_rng(4))
    savemat(
        tmp_path / "trainval" / "2008_000002.mat", {"LabelMap": np.full((4, 4), 460, np.uint16)}
    )
    with pytest.raises(RuntimeError, match=r"2008_000002\.mat.*values \[460\]"):
        convert_pascal_context_459(tmp_path, tmp_path / "out", workers=1)


# --------------------------------------------------------------------------- VOC-20
def test_voc20_reads_voc_without_background(tmp_path: Path, compose_cfg: Callable) -> None:
    raws = make_voc(tmp_path)
    dm, dataset = _read_split(compose_cfg, "voc20", tmp_path)
    assert dm.num_classes == 20 and dm.class_names == _names("voc")[1:]
    assert len(dm.palette) == 20 and dm.ignore_index == 255
    for index, raw in enumerate(raws):
        expected = np.where((raw == 0) | (raw == 255), 255, raw - 1)
        np.testing.assert_array_equal(dataset[index]["mask"], expected)


# --------------------------------------------------------------------------- metrics
def test_metrics_count_class_255_and_ignore_65535() -> None:
    # With 847 classes 255 is a class: only the data's own ignore value (65535) may be dropped.
    metric = SegMetrics(847, ignore_index=IGNORE)
    target = torch.tensor([[[255, 255, IGNORE, 3]]])
    metric.update(torch.tensor([[[255, 3, 0, 3]]]), target)
    iou = metric.compute()["IoU"]
    assert iou[255].item() == pytest.approx(0.5) and iou[3].item() == pytest.approx(0.5)
    assert torch.isnan(iou[0])  # the ignored pixel's prediction counts nowhere
