"""The dataset zoo: every data config of conf/data read from a tiny tree in its dataset's layout.

Each case states, independently of the YAML, where MMSegmentation 1.2.2 (and its converters) put
the files, which raw label values they hold and which training ids those must become, and the
class count and sizes of MMSegmentation's dataset class and config. The real config is composed,
instantiated and read: sample counts, label mapping (every pixel), palette, pipelines and one
evaluation batch. Decoy files (other annotation variants, unlisted images) must not be read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from segkit.cli._hydra import CONFIG_DIR
from segkit.data.download import Resource

DATA_DIR = Path(CONFIG_DIR) / "data"
# tested elsewhere; the open-vocabulary benchmarks (16-bit labels, voc20 composed from voc) in
# tests/test_openvocab_data.py
NOT_ZOO = {
    "shapes",
    "shapes_depth",
    "kitti_eigen",
    "mix",
    "custom",
    "ade20k_full",
    "pascal_context_459",
    "voc20",
}
H, W = 32, 48  # tiny image size (synapse: square slices)
TEST_RESIZE = [96, 64]  # evaluation resize used here: 32x48 images become 64x96


@dataclass
class Case:
    """A dataset's layout and label space as MMSegmentation states them."""

    num_classes: int
    splits: dict[str, list[tuple[str, ...]]]  # split -> [(image, label[, depth])]
    values: list[int]  # raw label values written to the label maps
    lut: dict[int, int]  # raw value -> training id
    scale: list[int] | None  # MMSegmentation's training rescale (long, short)
    crop: list[int] | None  # MMSegmentation's training crop (h, w)
    test_resize: list[int]  # MMSegmentation's test Resize scale
    lists: dict[str, list[str]] = field(default_factory=dict)  # split files: path -> stems
    decoys: dict[str, str] = field(default_factory=dict)  # path -> "image" | "label" | "file"
    palette_png: bool = False  # label maps are palette ('P') PNGs
    size: tuple[int, int] = (H, W)
    test_only: bool = False


def identity(values: list[int]) -> dict[int, int]:
    return {v: v for v in values}


def shifted(values: list[int]) -> dict[int, int]:
    """reduce_zero_label: 0 -> 255, v -> v - 1."""
    return {v: 255 if v in (0, 255) else v - 1 for v in values}


def files(img: str, ann: str, *stems: str, depth: str | None = None) -> list[tuple[str, ...]]:
    """One ``(image, label[, depth])`` tuple per stem; ``{}`` in the patterns is the stem."""
    return [(img.format(s), ann.format(s), *([depth.format(s)] if depth else [])) for s in stems]


ADE = ([2048, 512], [512, 512], [2048, 512])  # MMSeg (scale, crop, test resize) of 512x512 configs
CITY = ([2048, 1024], [512, 1024], [2048, 1024])
CS_VALUES = [0, 10, 18, 255]
VOC = [0, 7, 20, 255]
ISPRS = [0, 1, 3, 6]
RETINA = [0, 1, 255]
CTX_LISTS = {
    "ImageSets/SegmentationContext/train.txt": ["2008_000002"],
    "ImageSets/SegmentationContext/val.txt": ["2008_000008", "2008_000009"],
}
CTX = {
    "train": files("JPEGImages/{}.jpg", "SegmentationClassContext/{}.png", "2008_000002"),
    "val": files(
        "JPEGImages/{}.jpg", "SegmentationClassContext/{}.png", "2008_000008", "2008_000009"
    ),
}
MAPILLARY_STEMS = ("_1Gn_xkw7sa_i9GU4mkxxQ", "_4oPNhVSmDwI5mjIoI0olA")


def mapillary(version: str) -> dict[str, list[tuple[str, ...]]]:
    return {
        "train": files(
            "training/images/{}.jpg", f"training/{version}/labels/{{}}.png", "__CRyFzoDOXn6unQ"
        ),
        "val": files(
            "validation/images/{}.jpg", f"validation/{version}/labels/{{}}.png", *MAPILLARY_STEMS
        ),
    }


def img_ann(img: str, ann: str, sfx: str, train: list[str], val: list[str]) -> dict:
    """``{img}/{train,val}/<stem>.png`` and ``{ann}/...<stem>{sfx}`` (MMSeg's usual folders)."""
    tr, va = ("training", "validation") if img == "images" else ("train", "val")
    return {
        "train": files(f"{img}/{tr}/{{}}.png", f"{ann}/{tr}/{{}}{sfx}", *train),
        "val": files(f"{img}/{va}/{{}}.png", f"{ann}/{va}/{{}}{sfx}", *val),
    }


CASES: dict[str, Case] = {
    "ade20k": Case(
        150,
        {
            "train": files(
                "images/training/{}.jpg", "annotations/training/{}.png", "ADE_train_00000001"
            ),
            "val": files(
                "images/validation/{}.jpg",
                "annotations/validation/{}.png",
                "ADE_val_00000001",
                "ADE_val_00000002",
            ),
        },
        [0, 1, 75, 150],
        shifted([0, 1, 75, 150]),
        *ADE,
    ),
    "cityscapes": Case(
        19,
        {
            "train": files(
                "leftImg8bit/train/aachen/{}_leftImg8bit.png",
                "gtFine/train/aachen/{}_gtFine_labelTrainIds.png",
                "aachen_000000_000019",
            ),
            "val": files(
                "leftImg8bit/val/frankfurt/{}_leftImg8bit.png",
                "gtFine/val/frankfurt/{}_gtFine_labelTrainIds.png",
                "frankfurt_000000_000294",
                "frankfurt_000000_000576",
            ),
        },
        CS_VALUES,
        identity(CS_VALUES),
        *CITY,
        decoys={"gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png": "label"},
    ),
    "voc": Case(
        21,
        {
            "train": files("JPEGImages/{}.jpg", "SegmentationClass/{}.png", "2007_000032"),
            "val": files(
                "JPEGImages/{}.jpg", "SegmentationClass/{}.png", "2007_000033", "2007_000042"
            ),
        },
        VOC,
        identity(VOC),
        *ADE,
        lists={
            "ImageSets/Segmentation/train.txt": ["2007_000032"],
            "ImageSets/Segmentation/val.txt": ["2007_000033", "2007_000042"],
        },
        decoys={"JPEGImages/2008_000002.jpg": "image"},
        palette_png=True,
    ),
    "voc_aug": Case(
        21,
        {
            # MMSeg's concatenation: VOC train (its own labels) + SBD's aug.txt
            "train": files("JPEGImages/{}.jpg", "SegmentationClass/{}.png", "2007_000032")
            + files(
                "JPEGImages/{}.jpg", "SegmentationClassAug/{}.png", "2008_000002", "2008_000003"
            ),
            "val": files(
                "JPEGImages/{}.jpg", "SegmentationClass/{}.png", "2007_000033", "2007_000042"
            ),
        },
        VOC,
        identity(VOC),
        *ADE,
        lists={
            "ImageSets/Segmentation/aug.txt": ["2008_000002", "2008_000003"],
            "ImageSets/Segmentation/train.txt": ["2007_000032"],
            "ImageSets/Segmentation/val.txt": ["2007_000033", "2007_000042"],
        },
        # an SBD label of an image in neither list is not read
        decoys={
            "JPEGImages/2008_000009.jpg": "image",
            "SegmentationClassAug/2008_000009.png": "label",
        },
        palette_png=True,
    ),
    "pascal_context": Case(
        59,
        CTX,
        [0, 1, 30, 59],
        shifted([0, 1, 30, 59]),
        [520, 520],
        [480, 480],
        [520, 520],
        lists=CTX_LISTS,
        decoys={"JPEGImages/2008_000010.jpg": "image"},
    ),
    "pascal_context_60": Case(
        60,
        CTX,
        [0, 1, 30, 59, 255],
        identity([0, 1, 30, 59, 255]),
        [520, 520],
        [480, 480],
        [520, 520],
        lists=CTX_LISTS,
    ),
    "coco_stuff10k": Case(
        171,
        {
            "train": files(
                "images/train2014/{}.jpg",
                "annotations/train2014/{}_labelTrainIds.png",
                "COCO_train2014_000000000077",
            ),
            "val": files(
                "images/test2014/{}.jpg",
                "annotations/test2014/{}_labelTrainIds.png",
                "COCO_train2014_000000000009",
                "COCO_train2014_000000000025",
            ),
        },
        [0, 1, 100, 171],
        shifted([0, 1, 100, 171]),
        *ADE,
        # the unzipped release stays next to the converted files
        decoys={
            "images/COCO_train2014_000000000077.jpg": "image",
            "annotations/COCO_train2014_000000000077.mat": "file",
        },
    ),
    "coco_stuff164k": Case(
        171,
        {
            "train": files(
                "images/train2017/{}.jpg",
                "annotations/train2017/{}_labelTrainIds.png",
                "000000000009",
            ),
            "val": files(
                "images/val2017/{}.jpg",
                "annotations/val2017/{}_labelTrainIds.png",
                "000000000139",
                "000000000285",
            ),
        },
        [0, 85, 170, 255],
        identity([0, 85, 170, 255]),
        *ADE,
        decoys={"annotations/val2017/000000000139.png": "label"},  # the raw stuffthingmap
    ),
    "loveda": Case(
        7,
        img_ann("img_dir", "ann_dir", ".png", ["1366"], ["2522", "3514"]),
        [0, 1, 4, 7],
        shifted([0, 1, 4, 7]),
        [2048, 512],
        [512, 512],
        [1024, 1024],
        decoys={"img_dir/test/4191.png": "image"},  # the test split has no labels
    ),
    "potsdam": Case(
        6,
        img_ann(
            "img_dir",
            "ann_dir",
            ".png",
            ["2_10_0_0_512_512"],
            ["2_13_0_0_512_512", "2_13_512_0_1024_512"],
        ),
        ISPRS,
        shifted(ISPRS),
        [512, 512],
        [512, 512],
        [512, 512],
    ),
    "vaihingen": Case(
        6,
        img_ann(
            "img_dir",
            "ann_dir",
            ".png",
            ["area1_0_0_512_512"],
            ["area2_0_0_512_512", "area4_0_0_512_512"],
        ),
        ISPRS,
        shifted(ISPRS),
        [512, 512],
        [512, 512],
        [512, 512],
    ),
    "isaid": Case(
        16,
        img_ann(
            "img_dir",
            "ann_dir",
            "_instance_color_RGB.png",
            ["P0002_0_896_0_896"],
            ["P0003_0_896_0_896", "P0003_0_896_512_1408"],
        ),
        [0, 1, 15, 255],
        identity([0, 1, 15, 255]),
        [896, 896],
        [896, 896],
        [896, 896],
        decoys={"img_dir/test/P0006.png": "image"},
    ),
    "drive": Case(
        2,
        img_ann("images", "annotations", "_manual1.png", ["21"], ["01", "02"]),
        RETINA,
        identity(RETINA),
        [584, 565],
        [64, 64],
        [584, 565],
        decoys={"annotations/validation/01_manual2.png": "label"},  # the second observer
    ),
    "stare": Case(
        2,
        img_ann("images", "annotations", ".ah.png", ["im0001"], ["im0081", "im0082"]),
        RETINA,
        identity(RETINA),
        [605, 700],
        [128, 128],
        [605, 700],
        decoys={"annotations/validation/im0081.vk.png": "label"},
    ),
    "chase_db1": Case(
        2,
        img_ann("images", "annotations", "_1stHO.png", ["Image_01L"], ["Image_11L", "Image_11R"]),
        RETINA,
        identity(RETINA),
        [960, 999],
        [128, 128],
        [960, 999],
        decoys={"annotations/validation/Image_11L_2ndHO.png": "label"},
    ),
    "hrf": Case(
        2,
        img_ann("images", "annotations", ".png", ["01_dr"], ["06_dr", "06_g"]),
        RETINA,
        identity(RETINA),
        [2336, 3504],
        [256, 256],
        [2336, 3504],
    ),
    "dark_zurich": Case(
        19,
        {
            "val": files(
                "rgb_anon/val/night/GOPR0356/{}_rgb_anon.png",
                "gt/val/night/GOPR0356/{}_gt_labelTrainIds.png",
                "GOPR0356_frame_000324",
                "GOPR0356_frame_000335",
            )
        },
        CS_VALUES,
        identity(CS_VALUES),
        None,
        None,
        [1920, 1080],
        decoys={
            "gt/val/night/GOPR0356/GOPR0356_frame_000324_gt_labelIds.png": "label",
            "rgb_anon/val_ref/day/GOPR0356_ref/GOPR0356_frame_000324_ref_rgb_anon.png": "image",
        },
        test_only=True,
    ),
    "night_driving": Case(
        19,
        {
            "val": files(
                "leftImg8bit/test/night/{}_leftImg8bit.png",
                "gtCoarse_daytime_trainvaltest/test/night/{}_gtCoarse_labelTrainIds.png",
                "0_frame_0080",
                "0_frame_0100",
            )
        },
        CS_VALUES,
        identity(CS_VALUES),
        None,
        None,
        [1920, 1080],
        decoys={
            "gtCoarse_daytime_trainvaltest/test/night/0_frame_0080_gtCoarse_labelIds.png": "label"
        },
        test_only=True,
    ),
    "mapillary_v1": Case(
        66,
        mapillary("v1.2"),
        [0, 13, 64, 65],  # 65 'Unlabeled' is a class
        identity([0, 13, 64, 65]),
        *CITY,
        decoys={f"validation/v2.0/labels/{MAPILLARY_STEMS[0]}.png": "label"},
        palette_png=True,
    ),
    "mapillary_v2": Case(
        124,
        mapillary("v2.0"),
        [0, 21, 100, 123],  # 123 'Unlabeled' is a class
        identity([0, 21, 100, 123]),
        *CITY,
        decoys={f"validation/v1.2/labels/{MAPILLARY_STEMS[0]}.png": "label"},
        palette_png=True,
    ),
    "bdd100k": Case(
        19,
        {
            "train": files(
                "images/10k/train/{}.jpg", "labels/sem_seg/masks/train/{}.png", "0004a4c0-d4dff0ad"
            ),
            "val": files(
                "images/10k/val/{}.jpg",
                "labels/sem_seg/masks/val/{}.png",
                "7d06fefd-f7be05a6",
                "7d128593-0ccfea4c",
            ),
        },
        CS_VALUES,
        identity(CS_VALUES),
        *CITY,
        decoys={"labels/sem_seg/colormaps/val/7d06fefd-f7be05a6.png": "image"},
    ),
    "synapse": Case(
        9,
        {
            "train": files("img_dir/train/{}.jpg", "ann_dir/train/{}.png", "case0005_slice000"),
            "val": files(
                "img_dir/val/{}.jpg",
                "ann_dir/val/{}.png",
                "case0001_slice000",
                "case0001_slice001",
            ),
        },
        [0, 1, 8, 255],
        identity([0, 1, 8, 255]),
        [224, 224],
        None,
        [224, 224],
        size=(48, 48),
    ),
    "refuge": Case(
        3,
        {
            **img_ann("images", "annotations", ".png", ["g0001"], ["V0001", "V0002"]),
            "test": files(
                "images/test/{}.png", "annotations/test/{}.png", "T0001", "T0002", "T0003"
            ),
        },
        [0, 1, 2, 255],
        identity([0, 1, 2, 255]),
        [2056, 2124],
        [512, 512],
        [1634, 1634],
    ),
    "nyu": Case(
        40,
        {
            "train": files(
                "images/train/{}.jpg",
                "labels40/train/{}.png",
                "bedroom_00004",
                "kitchen_00011",
                depth="annotations/train/{}.png",
            ),
            "val": files(
                "images/test/{}.jpg",
                "labels40/test/{}.png",
                "bathroom_00045",
                "bathroom_00046",
                depth="annotations/test/{}.png",
            ),
        },
        [0, 1, 20, 40],
        shifted([0, 1, 20, 40]),
        None,
        [480, 480],
        [2000, 480],
        lists={
            "labels40/train.txt": ["bedroom_00004", "kitchen_00011"],
            "labels40/test.txt": ["bathroom_00045", "bathroom_00046"],
        },
        # a frame of the depth-only (sync) set: image and depth, no semantic label
        decoys={
            "images/train/kitchen_0028b_00045.jpg": "image",
            "annotations/train/kitchen_0028b_00045.png": "depth",
        },
    ),
}


# --------------------------------------------------------------------------- tiny trees
def _write_image(path: Path, rng: np.random.Generator, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def _write_label(path: Path, raw: np.ndarray, palette: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(raw.astype(np.uint8), mode="P" if palette else "L")
    if palette:  # the colours are cosmetic: pixel values are the class ids
        image.putpalette(list(range(256)) * 3)
    image.save(path)


def _write_depth(path: Path, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    depth = rng.integers(0, 10000, size, dtype=np.uint16)  # millimetres, 0 = no measurement
    depth[0, 0] = 0
    cv2.imwrite(str(path), depth)
    return depth


def _raw_label(rng: np.random.Generator, values: list[int], size: tuple[int, int]) -> np.ndarray:
    raw = rng.choice(np.array(values), size)
    raw.flat[: len(values)] = values  # every value present; raw[0, 0] is values[0]
    return raw


def build_tree(root: Path, case: Case) -> dict[str, list[dict[str, np.ndarray]]]:
    """Write ``case``'s files under ``root``; returns the raw label (and depth) of each sample."""
    rng = np.random.default_rng(0)
    written: dict[str, list[dict[str, np.ndarray]]] = {}
    for split, samples in case.splits.items():
        written[split] = []
        for files in samples:
            _write_image(root / files[0], rng, case.size)
            raw = _raw_label(rng, case.values, case.size)
            _write_label(root / files[1], raw, case.palette_png)
            entry = {"raw": raw}
            if len(files) > 2:
                entry["depth"] = _write_depth(root / files[2], rng, case.size)
            written[split].append(entry)
    for path, stems in case.lists.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("".join(f"{s}\n" for s in stems))
    for path, kind in case.decoys.items():
        if kind == "image":
            _write_image(root / path, rng, case.size)
        elif kind == "label":  # a value no config accepts: reading it would fail
            _write_label(root / path, np.full(case.size, 254), case.palette_png)
        elif kind == "depth":
            _write_depth(root / path, rng, case.size)
        else:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(b"not read")
    return written


def _expected(case: Case, raw: np.ndarray) -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int64)
    for value, train_id in case.lut.items():
        lut[value] = train_id
    return lut[raw]


def _raw_config(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(DATA_DIR / f"{name}.yaml"), resolve=False)


def zoo_names() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml") if p.stem not in NOT_ZOO)


# --------------------------------------------------------------------------- tests
def test_every_data_config_has_a_case() -> None:
    assert set(zoo_names()) == set(CASES), "add a Case for each new data config"


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_states_mmsegmentation_sizes_and_sources(name: str) -> None:
    case, cfg = CASES[name], _raw_config(name)
    assert cfg["name"] == name
    assert cfg["scale"] == case.scale and cfg["crop_size"] == case.crop
    assert cfg["test_resize"] == case.test_resize
    assert cfg["labels"]["num_classes"] == case.num_classes
    assert (cfg["train"] is None) == case.test_only
    text = (DATA_DIR / f"{name}.yaml").read_text()
    assert "${data." not in text, "interpolations must be relative (data configs compose in mix)"
    assert "Layout and preparation: docs/datasets.md" in text
    assert cfg["how_to_get"]
    for resource in cfg.get("resources") or ():
        Resource.coerce(resource)  # known fields, well-formed checksums
    convert = cfg.get("convert")
    if convert is not None:
        module, _, func = convert["_target_"].rpartition(".")
        assert module.startswith("segkit.data.convert.") and func.startswith("convert_")
        assert convert["_partial_"] is True
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError:
            pytest.skip(f"{module} is not written yet")
        assert callable(getattr(imported, func, None)), f"{module} has no {func}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_dataset_reads_its_layout(name: str, compose_cfg: Callable, tmp_path: Path) -> None:
    case = CASES[name]
    root = tmp_path / "data"
    written = build_tree(root, case)
    overrides = [
        f"data={name}",
        f"data.root={root}",
        "data.num_workers=0",
        f"data.test_resize=[{TEST_RESIZE[0]},{TEST_RESIZE[1]}]",
    ]
    if case.scale is not None:
        overrides.append("data.scale=[64,64]")
    if case.crop is not None:
        overrides.append("data.crop_size=[16,16]")
    dm = instantiate(compose_cfg(overrides).data)

    # the label space: MMSegmentation's class count, one name and one colour per class
    assert dm.num_classes == len(dm.class_names) == dm.labels.num_classes == case.num_classes
    assert len(dm.palette) == case.num_classes
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in dm.palette)
    assert dm.ignore_index == 255

    dm.setup("test" if case.test_only else "fit")
    eval_split = "test" if case.test_only else "val"
    assert not dm.has_split("train") if case.test_only else dm.has_split("train")
    for split, samples in written.items():
        key = "test" if case.test_only or split == "test" else split  # test-only: val is test
        if key == "test":
            dm.setup("test")
        assert len(dm.datasets[key]) == len(samples), split

    # evaluation samples: labels at their original size, mapped to training ids, every pixel
    dataset = dm.datasets[eval_split]
    for index, entry in enumerate(written["val"]):
        sample = dataset[index]
        expected = _expected(case, entry["raw"])
        assert (expected >= 0).all()
        np.testing.assert_array_equal(sample["mask"], expected)
        assert sample["mask"][0, 0] == case.lut[case.values[0]]  # a known pixel
        if "depth" in entry:
            np.testing.assert_allclose(sample["depth"], entry["depth"] / 1000.0, rtol=1e-6)
            assert sample["depth"][0, 0] == 0.0

    # one evaluation batch: images rescaled (keep ratio), labels at their own size
    h, w = case.size
    factor = min(max(TEST_RESIZE) / max(h, w), min(TEST_RESIZE) / min(h, w))
    loader = dm.test_dataloader() if case.test_only else dm.val_dataloader()
    batch = next(iter(loader))
    n = len(written["val"])
    assert tuple(batch["image"].shape) == (n, 3, round(h * factor), round(w * factor))
    assert tuple(batch["mask"].shape) == (n, h, w)

    # a training sample through the training pipeline
    if not case.test_only:
        sample = dm.datasets["train"][0]
        side = 16 if case.crop is not None else 64  # synapse: square slices resized to 64
        assert sample["image"].shape == (side, side, 3)
        assert sample["mask"].shape == (side, side)
        valid = set(range(case.num_classes)) | {255}
        assert set(np.unique(sample["mask"]).tolist()) <= valid
        if "depth" in written["train"][0]:
            assert sample["depth"].shape == (side, side)


def test_nyu_depth_only_reads_every_frame(compose_cfg: Callable, tmp_path: Path) -> None:
    """The override documented in nyu.yaml: MMSegmentation's depth-only NYU set, all frames."""
    root = tmp_path / "nyu"
    build_tree(root, CASES["nyu"])
    cfg = compose_cfg(
        [
            "data=nyu",
            f"data.root={root}",
            "data.num_workers=0",
            "data.train.ann_dir=null",
            "data.train.split_file=null",
            "data.val.ann_dir=null",
            "data.val.split_file=null",
            "data.label_check_samples=0",
            "data.crop_size=[16,16]",
        ]
    )
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 3  # the two labelled frames and the depth-only one
    sample = dm.datasets["train"][0]
    assert "mask" not in sample and sample["depth"].shape == (16, 16)
    batch = next(iter(dm.val_dataloader()))
    assert "mask" not in batch and batch["image"].shape[0] == 2


def test_zoo_configs_compose_inside_a_mix(compose_cfg: Callable) -> None:
    """Every zoo config resolves when placed under data.sources.<name> of data=mix."""
    names = zoo_names()
    cfg = compose_cfg(["data=mix", *(f"+data@data.sources.zoo_{n}={n}" for n in names)])
    for name in names:
        source = OmegaConf.to_container(cfg.data.sources[f"zoo_{name}"], resolve=True)
        assert source["name"] == name
        assert source["labels"]["num_classes"] == CASES[name].num_classes
        for split in ("train", "val"):
            if source[split] is not None:
                parts = source[split].get("parts", {"": source[split]}).values()
                assert all(part["root"] == source["root"] for part in parts)


@pytest.mark.parametrize("name", ["dark_zurich", "night_driving"])
def test_download_leaves_the_layout_the_config_reads(
    name: str, compose_cfg: Callable, tmp_path: Path
) -> None:
    """The resources of a direct-download config, served from local copies of the publisher's
    archives, extract into exactly the folders the config reads (no top folder in these zips)."""
    import zipfile

    case = CASES[name]
    staged = tmp_path / "publisher"
    build_tree(staged, case)
    cfg = compose_cfg([f"data={name}", f"data.root={tmp_path / 'data'}", "data.num_workers=0"])
    dm = instantiate(cfg.data)
    local = []
    for resource in dm.resources:
        archive = tmp_path / "mirror" / Resource.coerce(resource).name
        archive.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w") as zf:
            for f in sorted(p for p in staged.rglob("*") if p.is_file()):
                zf.write(f, f.relative_to(staged).as_posix())
        local.append({**resource, "url": archive.as_uri()})
    dm.resources = local
    assert dm.fetch() is True
    dm.setup("test")
    assert len(dm.datasets["test"]) == len(case.splits["val"])
