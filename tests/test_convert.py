"""Annotation converters: tiny raw downloads in the publishers' formats, converted and checked.

Every converter runs with one and with two workers, and a second run must skip everything. The
raw-data builders at the end of the file write the official layouts (archives included).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.data.convert import ConversionReport
from segkit.data.convert.cityscapes import convert_cityscapes, polygons_to_train_ids
from segkit.data.convert.coco_stuff import convert_coco_stuff10k, convert_coco_stuff164k
from segkit.data.convert.isaid import convert_isaid
from segkit.data.convert.isprs import clip_boxes, convert_potsdam, convert_vaihingen
from segkit.data.convert.loveda import convert_loveda
from segkit.data.convert.nyu import convert_nyu
from segkit.data.convert.pascal_context import CONTEXT_IDS, convert_pascal_context, decode_rle
from segkit.data.convert.refuge import convert_refuge
from segkit.data.convert.retinal import convert_chase_db1, convert_drive, convert_hrf, convert_stare
from segkit.data.convert.synapse import convert_synapse
from segkit.data.convert.voc_aug import convert_voc_aug

WORKERS = pytest.mark.parametrize("workers", [1, 2])


def _run(fn, src: Path, dst: Path, workers: int, **options) -> ConversionReport:
    """Convert, then convert again: the second run must skip every file the first wrote."""
    first = fn(src=src, dst=dst, workers=workers, **options)
    assert first.written > 0 and first.skipped == 0
    again = fn(src=src, dst=dst, workers=workers, **options)
    assert (again.written, again.skipped) == (0, first.written)
    return first


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- Cityscapes -------------------------------------------------------------------------------


def test_cityscapes_polygons_match_cityscapesscripts(tmp_path):
    scripts = pytest.importorskip("cityscapesscripts.preparation.json2labelImg")
    annotation = _cityscapes_annotation(np.random.default_rng(0))
    path = tmp_path / "a_gtFine_polygons.json"
    path.write_text(json.dumps(annotation))
    scripts.json2labelImg(str(path), str(tmp_path / "reference.png"), "trainIds")
    ours = np.asarray(polygons_to_train_ids(annotation))
    assert np.array_equal(ours, _png(tmp_path / "reference.png"))
    # The scene exercises the rules: cargroup drawn as car (13), the deleted person (11) and the
    # license plate absent, polegroup as its own void label.
    assert 13 in ours and 11 not in ours and {0, 10, 255} <= set(np.unique(ours).tolist())


@WORKERS
def test_cityscapes_layout_and_splits(tmp_path, workers):
    scripts = pytest.importorskip("cityscapesscripts.preparation.json2labelImg")
    src = tmp_path / "cityscapes"
    stems = _make_cityscapes(src)
    dst = tmp_path / "out"
    report = _run(convert_cityscapes, src, dst, workers)
    assert report.written == len(stems)
    for split, city, stem in stems:
        json_path = src / "gtFine" / split / city / f"{stem}_gtFine_polygons.json"
        scripts.json2labelImg(str(json_path), str(tmp_path / "ref.png"), "trainIds")
        out = dst / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png"
        assert np.array_equal(_png(out), _png(tmp_path / "ref.png"))
    assert (
        dst / "train.txt"
    ).read_text() == "aachen/aachen_000000_000019\nbochum/bochum_000000_000313\n"
    assert (dst / "val.txt").read_text() == "frankfurt/frankfurt_000000_000294\n"
    assert (dst / "leftImg8bit").resolve() == (src / "leftImg8bit").resolve()

    # In place, as MMSegmentation: the label maps lie beside the JSON files.
    convert_cityscapes(src, src, workers=workers)
    assert (src / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelTrainIds.png").is_file()
    assert not (src / "leftImg8bit" / "leftImg8bit").exists()


def test_cityscapes_unknown_label_names_the_file(tmp_path):
    src = tmp_path / "cs"
    _make_cityscapes(src)
    bad = src / "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json"
    annotation = json.loads(bad.read_text())
    annotation["objects"].append({"label": "spaceship", "polygon": [[0, 0], [5, 0], [5, 5]]})
    bad.write_text(json.dumps(annotation))
    with pytest.raises(RuntimeError, match="spaceship"):
        convert_cityscapes(src, tmp_path / "out", workers=1)


# --- Pascal VOC aug, PASCAL-Context -----------------------------------------------------------


@WORKERS
def test_voc_aug(tmp_path, workers):
    src = tmp_path / "raw"
    masks = _make_voc_aug(src)
    if workers == 1:  # the devkit layout, into another folder
        dst = tmp_path / "VOC2012"
    else:  # in place: SBD untarred into the VOC2012 folder, converted there
        src = src / "VOCdevkit" / "VOC2012"
        (tmp_path / "raw" / "benchmark_RELEASE").rename(src / "benchmark_RELEASE")
        dst = src
    _run(convert_voc_aug, src, dst, workers)
    for name, mask in masks.items():
        assert np.array_equal(_png(dst / "SegmentationClassAug" / f"{name}.png"), mask)
    sets = dst / "ImageSets" / "Segmentation"
    # VOC train a, b; val c; SBD train b, d, e; SBD val c, f.
    assert sets.joinpath("trainaug.txt").read_text().split() == ["a", "b", "d", "e", "f"]
    assert sets.joinpath("aug.txt").read_text().split() == ["d", "e", "f"]
    assert sets.joinpath("val.txt").read_text().split() == ["c"]
    assert (dst / "JPEGImages" / "a.jpg").is_file()


def test_rle_decoding_round_trip():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (7, 5), (40, 33)]:
        mask = (rng.random(shape) < 0.4).astype(np.uint8)
        mask[: shape[0] // 2, : shape[1] // 2] = 1  # long runs: multi-character counts
        rle = _rle_encode(mask)
        assert np.array_equal(decode_rle(rle), mask)
        as_list = {"size": list(shape), "counts": _rle_runs(mask)}
        assert np.array_equal(decode_rle(as_list), mask)


@WORKERS
def test_pascal_context_from_detail_json(tmp_path, workers):
    src = tmp_path / "raw"
    expected = _make_pascal_context_json(src)
    dst = tmp_path / "VOC2010"
    _run(convert_pascal_context, src, dst, workers, use_detail=False)
    for stem, mask in expected.items():
        assert np.array_equal(_png(dst / "SegmentationClassContext" / f"{stem}.png"), mask)
    sets = dst / "ImageSets" / "SegmentationContext"
    assert sets.joinpath("train.txt").read_text() == "2008_000002\n2008_000007\n"
    assert sets.joinpath("val.txt").read_text() == "2008_000003\n"
    assert (dst / "JPEGImages").is_dir()


def test_pascal_context_uses_detail_when_importable(tmp_path, monkeypatch):
    src = tmp_path / "raw"
    expected = _make_pascal_context_json(src)
    data = json.loads((src / "trainval_merged.json").read_text())

    class FakeDetail:  # the part of the PASCAL in Detail API that MMSegmentation uses
        def __init__(self, path, image_folder, phase):
            self.phase = phase

        def getImgs(self):
            return [img for img in data["images"] if img["phase"] == self.phase]

        def getMask(self, img):
            mask = np.zeros((img["height"], img["width"]))
            for ann in data["annos_segmentation"]:
                if ann["image_id"] == img["image_id"]:
                    mask[decode_rle(ann["segmentation"]) != 0] = ann["category_id"]
            return mask

    monkeypatch.setitem(sys.modules, "detail", types.SimpleNamespace(Detail=FakeDetail))
    dst = tmp_path / "VOC2010"
    report = convert_pascal_context(src, dst, workers=2)
    assert report.written == 3
    for stem, mask in expected.items():
        assert np.array_equal(_png(dst / "SegmentationClassContext" / f"{stem}.png"), mask)


@WORKERS
def test_pascal_context_from_mat_release(tmp_path, workers):
    src = tmp_path / "raw"
    label_maps = _make_pascal_context_mat(src)
    dst = tmp_path / "VOC2010"
    _run(convert_pascal_context, src, dst, workers)
    for stem, raw in label_maps.items():
        out = _png(dst / "SegmentationClassContext" / f"{stem}.png")
        expected = np.zeros_like(out)
        for index, context_id in enumerate(CONTEXT_IDS):
            expected[raw == context_id] = index
        assert np.array_equal(out, expected)
        assert out.max() == 59 and 1 in out  # wood is 59, aeroplane 1; accordion (1) -> 0
    sets = dst / "ImageSets" / "SegmentationContext"
    assert sets.joinpath("train.txt").read_text() == "2008_000002\n"
    assert sets.joinpath("val.txt").read_text() == "2008_000003\n"


# --- COCO-Stuff -------------------------------------------------------------------------------


@WORKERS
def test_coco_stuff10k(tmp_path, workers):
    src = tmp_path / "cocostuff-10k"
    raw = _make_coco_stuff10k(src)
    dst = tmp_path / "coco_stuff10k"
    _run(convert_coco_stuff10k, src, dst, workers)
    ann = dst / "annotations"
    assert _names(ann / "train2014") == {"COCO_train2014_000000000077_labelTrainIds.png"}
    assert _names(ann / "test2014") == {"COCO_train2014_000000000078_labelTrainIds.png"}
    assert _names(dst / "images" / "test2014") == {"COCO_train2014_000000000078.jpg"}
    out = _png(ann / "train2014" / "COCO_train2014_000000000077_labelTrainIds.png")
    lut = dict(zip(raw.ravel().tolist(), out.ravel().tolist()))
    # 0 unlabelled stays; 1..11 stay; 12 (unused) is left as is; 13 -> 12; ...; 182 -> 171.
    assert [lut[v] for v in (0, 1, 11, 12, 13, 25, 27, 91, 92, 182)] == [
        0,
        1,
        11,
        12,
        12,
        24,
        25,
        91,
        81,
        171,
    ]
    assert sorted({lut[v] for v in range(1, 183) if v not in _COCO_UNUSED}) == list(range(1, 172))


@WORKERS
def test_coco_stuff164k(tmp_path, workers):
    src = tmp_path / "raw"
    raw = _make_coco_stuff164k(src)
    dst = tmp_path / "coco_stuff164k"
    _run(convert_coco_stuff164k, src, dst, workers)
    out = _png(dst / "annotations" / "val2017" / "000000000139_labelTrainIds.png")
    lut = dict(zip(raw.ravel().tolist(), out.ravel().tolist()))
    assert [lut[v] for v in (0, 10, 11, 12, 181, 255)] == [0, 10, 11, 11, 170, 255]
    used = [v for v in range(182) if v + 1 not in _COCO_UNUSED]
    assert [lut[v] for v in used] == list(range(171))
    assert _names(dst / "images" / "train2017") == {"000000000009.jpg"}
    assert _names(dst / "annotations" / "train2017") == {"000000000009_labelTrainIds.png"}


# --- Remote sensing ---------------------------------------------------------------------------


def test_isprs_tiles_match_mmsegmentation_counts():
    # MMSegmentation's Potsdam: 144 patches of 512 per 6000 x 6000 tile (3456 train / 24 tiles).
    boxes = clip_boxes(6000, 6000, 512, 256)
    assert len(boxes) == 144
    assert sorted({b[0] for b in boxes}) == [*range(0, 5121, 512), 5488]
    assert all(b[2] - b[0] == 512 and b[3] - b[1] == 512 for b in boxes)


@WORKERS
def test_potsdam(tmp_path, workers):
    src = tmp_path / "potsdam_raw"
    colors, classes = _make_potsdam(src)
    dst = tmp_path / "potsdam"
    _run(convert_potsdam, src, dst, workers, clip_size=64, stride_size=32)
    spans = ["0_0_64_64", "64_0_128_64", "66_0_130_64", "0_64_64_128", "64_64_128_128"]
    spans += ["66_64_130_128", "0_86_64_150", "64_86_128_150", "66_86_130_150"]
    for split, tile in (("train", "2_10"), ("val", "2_13")):
        expected = {f"{tile}_{s}.png" for s in spans}
        assert _names(dst / "img_dir" / split) == expected
        assert _names(dst / "ann_dir" / split) == expected
    label = _png(dst / "ann_dir" / "val" / "2_13_66_86_130_150.png")
    assert np.array_equal(label, classes[86:150, 66:130])
    image = cv2.imread(str(dst / "img_dir" / "train" / "2_10_64_0_128_64.png"))
    assert np.array_equal(image, colors[0:64, 64:128])


@WORKERS
def test_vaihingen(tmp_path, workers):
    src = tmp_path / "vaihingen_raw"
    classes = _make_vaihingen(src)
    dst = tmp_path / "vaihingen"
    _run(convert_vaihingen, src, dst, workers, clip_size=64, stride_size=32)
    train = {"area1_0_0_64_64", "area1_36_0_100_64", "area1_0_6_64_70", "area1_36_6_100_70"}
    assert _names(dst / "img_dir" / "train") == {f"{n}.png" for n in train}
    assert _names(dst / "ann_dir" / "train") == {f"{n}.png" for n in train}
    assert {n.split("_")[0] for n in _names(dst / "img_dir" / "val")} == {"area2", "area9"}
    assert {n.split("_")[0] for n in _names(dst / "ann_dir" / "val")} == {"area2"}  # no area9
    assert np.array_equal(
        _png(dst / "ann_dir" / "train" / "area1_36_6_100_70.png"), classes[6:70, 36:100]
    )


@WORKERS
def test_isaid(tmp_path, workers):
    src = tmp_path / "iSAID_raw"
    images, classes = _make_isaid(src)
    dst = tmp_path / "iSAID"
    _run(convert_isaid, src, dst, workers, patch_size=64, overlap=16)
    # 100 x 70 (h x w), windows every 48: x starts 0, 6 (shifted); y starts 0, 36 (shifted), 36.
    windows = ["0_64_0_64", "36_100_0_64", "0_64_6_70", "36_100_6_70"]
    assert _names(dst / "img_dir" / "train") == {f"P0001_{w}.png" for w in windows}
    assert _names(dst / "ann_dir" / "train") == {
        f"P0001_{w}_instance_color_RGB.png" for w in windows
    }
    patch = np.asarray(
        Image.open(dst / "img_dir" / "train" / "P0001_36_100_6_70.png").convert("RGB")
    )
    assert np.array_equal(patch, images["P0001"][36:100, 6:70])
    assert np.array_equal(
        _png(dst / "ann_dir" / "train" / "P0001_36_100_6_70_instance_color_RGB.png"),
        classes[36:100, 6:70],
    )
    # A 40 x 30 val image is padded to 64 x 64: labels with 255, images with 0.
    label = _png(dst / "ann_dir" / "val" / "P0002_0_64_0_64_instance_color_RGB.png")
    assert label.shape == (64, 64) and (label[40:] == 255).all() and (label[:, 30:] == 255).all()
    assert set(np.unique(label[:40, :30]).tolist()) <= set(range(16))
    image = cv2.imread(str(dst / "img_dir" / "val" / "P0002_0_64_0_64.png"))
    assert (image[40:] == 0).all()
    assert (dst / "img_dir" / "test" / "P0003.png").read_bytes() == images["P0003_bytes"]


@WORKERS
def test_loveda(tmp_path, workers):
    src = tmp_path / "raw"
    files = _make_loveda(src)
    dst = tmp_path / "loveDA"
    _run(convert_loveda, src, dst, workers)
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    assert not (dst / "ann_dir" / "test").exists()
    assert _names(dst / "img_dir" / "train") == {"0.png", "1366.png"}


# --- Medical ----------------------------------------------------------------------------------


@WORKERS
def test_drive(tmp_path, workers):
    src = tmp_path / "raw"
    image, manual = _make_drive(src)
    dst = tmp_path / "DRIVE"
    _run(convert_drive, src, dst, workers)
    assert _names(dst / "images" / "training") == {"21.png"}
    assert _names(dst / "images" / "validation") == {"01.png"}
    assert _names(dst / "annotations" / "training") == {"21_manual1.png"}
    assert _names(dst / "annotations" / "validation") == {"01_manual1.png", "01_manual2.png"}
    assert np.array_equal(cv2.imread(str(dst / "images" / "training" / "21.png")), image)
    assert np.array_equal(_png(dst / "annotations" / "training" / "21_manual1.png"), manual // 128)


@WORKERS
def test_stare(tmp_path, workers):
    src = tmp_path / "raw"
    labels = _make_stare(src)
    dst = tmp_path / "STARE"
    _run(convert_stare, src, dst, workers)
    numbers = sorted(labels)
    assert _names(dst / "images" / "training") == {f"im{n}.png" for n in numbers[:10]}
    assert _names(dst / "images" / "validation") == {f"im{n}.png" for n in numbers[10:]}
    expected = {f"im{n}.{who}.png" for n in numbers[10:] for who in ("ah", "vk")}
    assert _names(dst / "annotations" / "validation") == expected
    first = numbers[0]
    assert np.array_equal(
        _png(dst / "annotations" / "training" / f"im{first}.ah.png"), labels[first] // 128
    )


@WORKERS
def test_chase_db1(tmp_path, workers):
    src = tmp_path / "raw"
    label = _make_chase_db1(src)
    dst = tmp_path / "CHASE_DB1"
    _run(convert_chase_db1, src, dst, workers)
    train = {f"Image_{k:02d}{eye}" for k in range(1, 11) for eye in "LR"}
    assert _names(dst / "images" / "training") == {f"{n}.png" for n in train}
    assert len(_names(dst / "images" / "validation")) == 8
    assert _names(dst / "annotations" / "training") == {
        f"{n}_{h}HO.png" for n in train for h in ("1st", "2nd")
    }
    assert np.array_equal(
        _png(dst / "annotations" / "validation" / "Image_14R_1stHO.png"), label // 128
    )


@WORKERS
def test_hrf(tmp_path, workers):
    src = tmp_path / "raw"
    label = _make_hrf(src)
    dst = tmp_path / "HRF"
    _run(convert_hrf, src, dst, workers)
    train = {f"{k:02d}_{s}.png" for k in range(1, 6) for s in ("h", "g", "dr")}
    assert _names(dst / "images" / "training") == train
    assert _names(dst / "annotations" / "training") == train
    assert len(_names(dst / "images" / "validation")) == 30
    assert np.array_equal(_png(dst / "annotations" / "validation" / "15_dr.png"), label // 128)


@WORKERS
def test_synapse(tmp_path, workers):
    pytest.importorskip("nibabel")
    src = tmp_path / "synapse_raw"
    volumes = _make_synapse(src)
    dst = tmp_path / "synapse"
    report = _run(convert_synapse, src, dst, workers)
    assert report.written == 2 * (3 + 2)
    assert _names(dst / "img_dir" / "train") == {f"case0001_slice{z:03d}.jpg" for z in range(3)}
    assert _names(dst / "ann_dir" / "val") == {f"case0002_slice{z:03d}.png" for z in range(2)}
    image, label = volumes["0001"]
    z = 1
    expected_label = np.zeros(label.shape[:2], np.uint8)
    for raw, organ in {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}.items():
        expected_label[label[:, :, z] == raw] = organ
    assert np.array_equal(
        _png(dst / "ann_dir" / "train" / "case0001_slice001.png"), expected_label[:, ::-1]
    )
    grey = (np.clip(image[:, :, z], -125, 275) + 125) / 400 * 255
    jpeg = np.asarray(Image.open(dst / "img_dir" / "train" / "case0001_slice001.jpg"))
    assert jpeg.shape == (*grey.shape, 3)
    assert np.abs(jpeg[..., 0].astype(float) - np.floor(grey[:, ::-1])).mean() < 4  # JPEG loss


@WORKERS
def test_refuge(tmp_path, workers):
    src = tmp_path / "raw"
    mask = _make_refuge(src)
    dst = tmp_path / "REFUGE"
    _run(convert_refuge, src, dst, workers)
    assert _names(dst / "images" / "training") == {"g0001.png", "n0001.png"}
    assert _names(dst / "annotations" / "training") == {"g0001.png"}  # not the illustration
    assert _names(dst / "images" / "validation") == {"V0001.png"}
    assert _names(dst / "annotations" / "validation") == {"V0001.png"}
    out = _png(dst / "annotations" / "training" / "g0001.png")
    expected = np.select([mask == 0, mask == 128, mask == 255], [1, 2, 0], mask.astype(int))
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_nyu(tmp_path, form):
    src = tmp_path / "raw"
    files = _make_nyu(src, as_zip=form == "zip")
    dst = tmp_path / "nyu"
    _run(convert_nyu, src, dst, 2 if form == "zip" else 1)
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    assert _names(dst / "images" / "test") == {"bathroom_00045.jpg"}


@WORKERS
def test_nyu_labels40_from_the_labelled_mat(tmp_path, workers):
    src = tmp_path / "raw"
    raw = _make_nyu_labelled(src)
    dst = tmp_path / "nyu"
    report = _run(
        convert_nyu,
        src,
        dst,
        workers,
        labeled_mat="nyu_depth_v2_labeled.mat",  # relative: found in the folder of src
        class_mapping=src / "classMapping40.mat",
        splits=src / "splits.mat",
    )
    # nyu folder: 2 train + 2 test files; labelled: 1 label (image and depth from nyu) + 3 x 3
    assert report.written == 4 + 1 + 9
    assert (dst / "labels40" / "train.txt").read_text() == "bedroom_00001\nliving_room_00003\n"
    assert (dst / "labels40" / "test.txt").read_text() == "bathroom_00000\nkitchen_00002\n"
    assert _names(dst / "labels40" / "train") == {"bedroom_00001.png", "living_room_00003.png"}
    assert _names(dst / "labels40" / "test") == {"bathroom_00000.png", "kitchen_00002.png"}
    assert _names(dst / "images" / "train") == {
        "basement_0001a_00000.jpg",
        "bedroom_00001.jpg",
        "living_room_00003.jpg",
    }
    assert _names(dst / "images" / "test") == {"bathroom_00000.jpg", "kitchen_00002.jpg"}
    assert _names(dst / "annotations" / "test") == {"bathroom_00000.png", "kitchen_00002.png"}

    mapping = raw["mapClass"]
    frames = ("test/bathroom_00000", "train/bedroom_00001", "test/kitchen_00002")
    frames += ("train/living_room_00003",)  # frame index -> split/stem
    for index, (split, stem) in enumerate(f.split("/") for f in frames):
        labels = raw["labels"][index]
        out = _png(dst / "labels40" / split / f"{stem}.png")
        assert out.dtype == np.uint8 and out.shape == (12, 16)
        assert np.array_equal(out, np.where(labels == 0, 0, mapping[labels.astype(int) - 1]))
        assert out[0, 0] == 0 and out[0, 1] == mapping[893] and out[0, 2] == mapping[0]
        if stem == "bathroom_00000":  # in the nyu test set: its image and depth are kept
            assert (dst / "images" / split / f"{stem}.jpg").read_bytes() == raw["nyu_image"]
            assert (dst / "annotations" / split / f"{stem}.png").read_bytes() == raw["nyu_depth"]
            continue
        image = cv2.imread(str(dst / "images" / split / f"{stem}.jpg"))  # BGR
        assert image.shape == (12, 16, 3)
        error = np.abs(image.astype(int) - raw["images"][index][..., ::-1].astype(int))
        assert error.mean() < 2
        depth = cv2.imread(str(dst / "annotations" / split / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16
        assert np.array_equal(depth, np.rint(raw["depths"][index] * 1000).astype(np.uint16))
    assert not list(dst.rglob("*_00004.*"))  # in neither split


def test_nyu_raw_depths_and_the_nyu_config_reads_the_output(tmp_path, compose_cfg):
    src = tmp_path / "raw"
    raw = _make_nyu_labelled(src)
    dst = tmp_path / "nyu"
    convert_nyu(
        src,
        dst,
        workers=1,
        labeled_mat=src / "nyu_depth_v2_labeled.mat",
        class_mapping=src / "classMapping40.mat",
        splits=src / "splits.mat",
        depth_key="rawDepths",
    )
    depth = cv2.imread(str(dst / "annotations" / "train" / "bedroom_00001.png"), -1)
    assert np.array_equal(depth, np.rint(raw["rawDepths"][1] * 1000).astype(np.uint16))
    assert (depth == 0).any()

    from hydra.utils import instantiate

    cfg = compose_cfg(
        ["data=nyu", f"data.root={dst}", "data.num_workers=0", "data.crop_size=[8,8]"]
    )
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 2  # the labelled frames only, not the sync frame
    sample = dm.datasets["train"][0]
    assert sample["mask"].shape == sample["depth"].shape == (8, 8)
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape[0] == 2 and tuple(batch["mask"].shape) == (2, 12, 16)


def test_nyu_labels_need_all_three_files_and_h5py(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="class_mapping, splits"):
        convert_nyu(tmp_path, tmp_path / "out", labeled_mat=tmp_path / "x.mat")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        convert_nyu(
            tmp_path, tmp_path / "out", labeled_mat="a.mat", class_mapping="b.mat", splits="c.mat"
        )


def test_nyu_class_mapping_layouts(tmp_path):
    from scipy.io import savemat

    from segkit.data.convert.nyu import _class_lut

    ids = np.random.default_rng(21).integers(1, 41, 894)
    names = np.array([f"class{k}" for k in range(1, 41)], dtype=object)
    savemat(tmp_path / "a.mat", {"mapClass": ids[None].astype(float), "className": names[None]})
    savemat(tmp_path / "b.mat", {"mapping": ids[:, None]})
    savemat(
        tmp_path / "c.mat",
        {"mapNYU894To40": names[ids - 1][None], "nyu40class": names[None]},
    )
    for name in ("a.mat", "b.mat", "c.mat"):
        lut = _class_lut(tmp_path / name)
        assert lut.dtype == np.uint8 and lut[0] == 0 and np.array_equal(lut[1:], ids)
    savemat(tmp_path / "d.mat", {"other": ids})
    with pytest.raises(ValueError, match="mapClass"):
        _class_lut(tmp_path / "d.mat")


def test_interrupted_tiling_resumes(tmp_path):
    """Outputs not known in advance (tiles) are recorded once a job finishes; a missing tile
    makes its job run again."""
    src = tmp_path / "potsdam_raw"
    _make_potsdam(src)
    dst = tmp_path / "potsdam"
    first = convert_potsdam(src, dst, workers=1, clip_size=64, stride_size=32)
    (dst / "ann_dir" / "train" / "2_10_0_0_64_64.png").unlink()
    again = convert_potsdam(src, dst, workers=1, clip_size=64, stride_size=32)
    assert (again.written, again.skipped) == (9, first.written - 9)


ALL_CONVERTERS = [
    convert_cityscapes,
    convert_voc_aug,
    convert_pascal_context,
    convert_coco_stuff10k,
    convert_coco_stuff164k,
    convert_potsdam,
    convert_vaihingen,
    convert_isaid,
    convert_loveda,
    convert_drive,
    convert_stare,
    convert_chase_db1,
    convert_hrf,
    convert_synapse,
    convert_refuge,
    convert_nyu,
]


@pytest.mark.parametrize("fn", ALL_CONVERTERS, ids=lambda fn: fn.__name__)
def test_missing_raw_data_says_what_is_expected(tmp_path, fn):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        fn(src=tmp_path, dst=tmp_path / "out", workers=1)


def test_missing_optional_dependency_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match="pip install nibabel"):
        convert_synapse(src=tmp_path, dst=tmp_path / "out")


# --- Raw data builders ------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _encode(array: np.ndarray, ext: str) -> bytes:
    """``array`` (BGR or grey) encoded by OpenCV as ``ext`` (``.png``, ``.tif``, ``.jpg``...)."""
    ok, data = cv2.imencode(ext, array)
    assert ok
    return data.tobytes()


def _pil_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _cityscapes_annotation(rng: np.random.Generator, width: int = 96, height: int = 48) -> dict:
    def poly(n=6):
        cx, cy = rng.uniform(10, width - 10), rng.uniform(8, height - 8)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(4, 25, n)
        return [
            [round(cx + r * np.cos(a), 1), round(cy + r * np.sin(a), 1)]
            for a, r in zip(angles, radius)
        ]

    objects = [
        {"label": "road", "polygon": [[0, 30], [95, 30], [95, 47], [0, 47]]},
        {"label": "sky", "polygon": [[0, 0], [95, 0], [95, 12], [0, 12]]},
        {"label": "car", "polygon": poly()},
        {"label": "cargroup", "polygon": [[20, 20], [60, 25], [40, 40]]},
        {"label": "person", "polygon": [[0, 0], [90, 0], [90, 45]], "deleted": 1},
        {"label": "license plate", "polygon": [[30, 30], [40, 30], [40, 35], [30, 35]]},
        {"label": "polegroup", "polygon": poly(4)},
        {"label": "bicyclegroup", "polygon": poly(5)},
        {"label": "out of roi", "polygon": [[80, 40], [95, 40], [95, 47]]},
        {"label": "rider", "polygon": [[50, 5], [50, 5]]},  # degenerate
        {"label": "building", "polygon": [[70.5, 2.2], [88.7, 3.9], [86.1, 20.4], [72.3, 17.8]]},
    ]
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


def _make_cityscapes(root: Path) -> list[tuple[str, str, str]]:
    stems = [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "bochum", "bochum_000000_000313"),
        ("val", "frankfurt", "frankfurt_000000_000294"),
    ]
    rng = np.random.default_rng(1)
    for split, city, stem in stems:
        folder = root / "gtFine" / split / city
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}_gtFine_polygons.json").write_text(
            json.dumps(_cityscapes_annotation(rng))
        )
        (folder / f"{stem}_gtFine_labelIds.png").write_bytes(b"")  # other official files stay
        images = root / "leftImg8bit" / split / city
        images.mkdir(parents=True, exist_ok=True)
        (images / f"{stem}_leftImg8bit.png").write_bytes(
            _encode(np.zeros((4, 4, 3), np.uint8), ".png")
        )
    return stems


def _make_voc_aug(root: Path) -> dict[str, np.ndarray]:
    from scipy.io import savemat

    voc = root / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    sets.joinpath("train.txt").write_text("a\nb\n")
    sets.joinpath("val.txt").write_text("c\n")
    (voc / "JPEGImages").mkdir()
    (voc / "JPEGImages" / "a.jpg").write_bytes(b"jpeg")
    sbd = root / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True)
    sbd.joinpath("train.txt").write_text("b\nd\ne\n")
    sbd.joinpath("val.txt").write_text("c\nf\n")
    rng = np.random.default_rng(2)
    masks = {}
    for name in "bcdef":
        mask = rng.integers(0, 21, (7, 9)).astype(np.uint8)
        mask[0] = 255
        gt = {
            "Segmentation": mask,
            "Boundaries": np.zeros((1, 1)),
            "CategoriesPresent": np.unique(mask),
        }
        savemat(sbd / "cls" / f"{name}.mat", {"GTcls": gt})
        masks[name] = mask
    return masks


def _rle_runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.ravel()  # column-major, as COCO
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return runs


def _rle_encode(mask: np.ndarray) -> dict:
    """COCO's compressed RLE string, written from the format's description."""
    runs = _rle_runs(mask)
    chars = []
    for i, count in enumerate(runs):
        value = count - runs[i - 2] if i > 2 else count
        more = True
        while more:
            c = value & 0x1F
            value >>= 5
            more = value != -1 if c & 0x10 else value != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return {"size": list(mask.shape), "counts": "".join(chars)}


def _make_pascal_context_json(root: Path) -> dict[str, np.ndarray]:
    (root / "VOCdevkit" / "VOC2010" / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(4)
    images, annotations, expected = [], [], {}
    for image_id, (stem, phase) in enumerate(
        [
            ("2008_000002", "train"),
            ("2008_000003", "val"),
            ("2008_000007", "train"),
            ("2008_000009", "test"),
        ]
    ):
        height, width = 12, 17
        images.append(
            {
                "image_id": image_id,
                "file_name": f"{stem}.jpg",
                "phase": phase,
                "height": height,
                "width": width,
            }
        )
        out = np.zeros((height, width), np.uint8)
        for k in range(4):  # overlapping random blobs, later ones on top
            category = int(rng.choice(CONTEXT_IDS[1:]))
            blob = np.zeros((height, width), np.uint8)
            y, x = rng.integers(0, height - 3), rng.integers(0, width - 3)
            blob[y : y + rng.integers(3, 9), x : x + rng.integers(3, 12)] = 1
            annotations.append(
                {
                    "id": 100 * image_id + k,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": _rle_encode(blob),
                }
            )
            out[blob == 1] = np.searchsorted(CONTEXT_IDS, category)
        expected[stem] = out
    data = {"images": images, "annos_segmentation": annotations, "categories": []}
    (root / "trainval_merged.json").write_text(json.dumps(data))
    del expected["2008_000009"]  # test phase: not converted
    return expected


def _make_pascal_context_mat(root: Path) -> dict[str, np.ndarray]:
    from scipy.io import savemat

    main = root / "VOCdevkit" / "VOC2010" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    main.joinpath("train.txt").write_text("2008_000002\n2008_000004\n")  # 000004 has no labels
    main.joinpath("val.txt").write_text("2008_000003\n")
    (root / "trainval").mkdir()
    (root / "labels.txt").write_text(
        "1: accordion\n2: aeroplane\n65: cat\n284: person\n458: wood\n"
    )
    rng = np.random.default_rng(5)
    maps = {}
    for stem in ("2008_000002", "2008_000003"):
        label_map = rng.integers(1, 460, (9, 13)).astype(np.uint16)
        label_map[0, :4] = [1, 2, 458, 284]
        savemat(root / "trainval" / f"{stem}.mat", {"LabelMap": label_map})
        maps[stem] = label_map
    return maps


_COCO_UNUSED = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)


def _make_coco_stuff10k(root: Path) -> np.ndarray:
    from scipy.io import savemat

    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "imageLists").mkdir()
    (root / "imageLists" / "train.txt").write_text("COCO_train2014_000000000077\n")
    (root / "imageLists" / "test.txt").write_text("COCO_train2014_000000000078\n")
    raw = np.arange(0, 183, dtype=np.uint8).reshape(1, -1).repeat(2, 0)
    for name in ("COCO_train2014_000000000077", "COCO_train2014_000000000078"):
        savemat(root / "annotations" / f"{name}.mat", {"S": raw.astype(np.uint16)})
        (root / "images" / f"{name}.jpg").write_bytes(
            _encode(np.zeros((2, 183, 3), np.uint8), ".jpg")
        )
    return raw


def _make_coco_stuff164k(root: Path) -> np.ndarray:
    raw = np.concatenate([np.arange(0, 182), [255]]).astype(np.uint8).reshape(1, -1).repeat(3, 0)
    for split, stem in (("train2017", "000000000009"), ("val2017", "000000000139")):
        (root / "annotations" / split).mkdir(parents=True)
        (root / "images" / split).mkdir(parents=True)
        Image.fromarray(raw).save(root / "annotations" / split / f"{stem}.png")
        (root / "images" / split / f"{stem}.jpg").write_bytes(
            _encode(np.zeros((3, 183, 3), np.uint8), ".jpg")
        )
    return raw


# ISPRS label colours in BGR, with their class index.
_ISPRS = [
    ((255, 255, 255), 1),
    ((255, 0, 0), 2),
    ((255, 255, 0), 3),
    ((0, 255, 0), 4),
    ((0, 255, 255), 5),
    ((0, 0, 255), 6),
]


def _isprs_label(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A colour label (BGR) and its class indices; black and an off-palette colour give 0."""
    palette = np.array([c for c, _ in _ISPRS] + [(0, 0, 0), (10, 20, 30)], np.uint8)
    index = np.array([i for _, i in _ISPRS] + [0, 0], np.uint8)
    choice = rng.integers(0, len(palette), shape)
    return palette[choice], index[choice]


def _make_potsdam(root: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    images, labels = {}, {}
    colors = classes = None
    for tile in ("2_10", "2_13"):
        image = rng.integers(0, 256, (150, 130, 3), dtype=np.uint8)
        label, index = _isprs_label(rng, (150, 130))
        images[f"2_Ortho_RGB/top_potsdam_{tile}_RGB.tif"] = _encode(image, ".tif")
        images[f"2_Ortho_RGB/top_potsdam_{tile}_RGB.tfw"] = b"world file"
        labels[f"top_potsdam_{tile}_label_noBoundary.tif"] = _encode(label, ".tif")
        if tile == "2_10":
            colors = image
        else:
            classes = index
    _zip(root / "2_Ortho_RGB.zip", images)
    _zip(root / "5_Labels_all_noBoundary.zip", labels)
    _zip(root / "1_DSM.zip", {"dsm_potsdam_02_10.tif": b"not read"})
    return colors, classes


def _make_vaihingen(root: Path) -> np.ndarray:
    rng = np.random.default_rng(7)
    images, labels = {}, {}
    classes = None
    for area in ("area1", "area2", "area9"):
        images[f"top/top_mosaic_09cm_{area}.tif"] = _encode(
            rng.integers(0, 256, (70, 100, 3), dtype=np.uint8), ".tif"
        )
        label, index = _isprs_label(rng, (70, 100))
        labels[f"top_mosaic_09cm_{area}_noBoundary.tif"] = _encode(label, ".tif")
        if area == "area1":
            classes = index
    images["gts_for_participants/top_mosaic_09cm_area1.tif"] = b"not read"
    _zip(root / "ISPRS_semantic_labeling_Vaihingen.zip", images)
    _zip(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip", labels)
    return classes


_ISAID_RGB = [(0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 127, 191), (0, 100, 155), (9, 9, 9)]


def _make_isaid(root: Path) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(8)
    out = {}
    classes = None
    for split, stem, shape in (("train", "P0001", (100, 70)), ("val", "P0002", (40, 30))):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        choice = rng.integers(0, len(_ISAID_RGB), shape)
        rgb = np.array(_ISAID_RGB, np.uint8)[choice]
        _zip(
            root / split / "images" / "part1.zip", {f"images/{stem}.png": _pil_bytes(image, "PNG")}
        )
        _zip(
            root / split / "Semantic_masks" / "images.zip",
            {f"images/{stem}_instance_color_RGB.png": _pil_bytes(rgb, "PNG")},
        )
        out[stem] = image
        if split == "train":
            classes = np.array([0, 1, 2, 13, 15, 0], np.uint8)[choice]
    out["P0003_bytes"] = _pil_bytes(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "PNG")
    _zip(root / "test" / "images" / "part1.zip", {"images/P0003.png": out["P0003_bytes"]})
    return out, classes


def _make_loveda(root: Path) -> dict[str, bytes]:
    files = {}
    numbers = {
        ("Train", "Rural"): 0,
        ("Train", "Urban"): 1366,
        ("Val", "Rural"): 2522,
        ("Val", "Urban"): 3514,
    }
    numbers.update({("Test", "Rural"): 4191, ("Test", "Urban"): 5167})
    for split in ("Train", "Val", "Test"):
        members = {}
        for area in ("Rural", "Urban"):
            n = numbers[split, area]
            image = _encode(np.full((4, 4, 3), n % 256, np.uint8), ".png")
            members[f"{split}/{area}/images_png/{n}.png"] = image
            files[f"img_dir/{split.lower()}/{n}.png"] = image
            if split != "Test":
                mask = _encode(np.full((4, 4), 3, np.uint8), ".png")
                members[f"{split}/{area}/masks_png/{n}.png"] = mask
                files[f"ann_dir/{split.lower()}/{n}.png"] = mask
        _zip(root / f"{split}.zip", members)
    return files


def _gif(array: np.ndarray) -> bytes:
    return _pil_bytes(array, "GIF")


def _make_drive(root: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    manual = rng.choice(np.array([0, 127, 128, 255], np.uint8), (9, 11))
    _zip(
        root / "training.zip",
        {
            "training/images/21_training.tif": _encode(image, ".tif"),
            "training/1st_manual/21_manual1.gif": _gif(manual),
            "training/mask/21_training_mask.gif": _gif(manual),
        },
    )
    _zip(
        root / "test.zip",
        {
            "test/images/01_test.tif": _encode(image, ".tif"),
            "test/1st_manual/01_manual1.gif": _gif(manual),
            "test/2nd_manual/01_manual2.gif": _gif(manual),
        },
    )
    return image, manual


def _ppm(array: np.ndarray) -> bytes:
    return _encode(array, ".ppm")


def _make_stare(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(10)
    numbers = ["0001", "0002", "0003", "0004", "0005", "0044", "0077", "0081", "0082", "0139"]
    numbers += ["0162", "0163", "0235", "0236", "0239", "0240", "0255", "0291", "0319", "0324"]
    images, ah, vk, labels = {}, {}, {}, {}
    for n in numbers:
        images[f"im{n}.ppm.gz"] = gzip.compress(
            _ppm(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
        )
        label = rng.choice(np.array([0, 100, 128, 255], np.uint8), (6, 7))
        ah[f"im{n}.ah.ppm.gz"] = gzip.compress(_ppm(np.repeat(label[..., None], 3, 2)))
        vk[f"im{n}.vk.ppm.gz"] = gzip.compress(_ppm(np.repeat(label[..., None], 3, 2)))
        labels[n] = label
    _tar(root / "stare-images.tar", images)
    _tar(root / "labels-ah.tar", ah)
    _tar(root / "labels-vk.tar", vk)
    return labels


def _make_chase_db1(root: Path) -> np.ndarray:
    rng = np.random.default_rng(11)
    label = rng.choice(np.array([0, 127, 128, 255], np.uint8), (5, 6))
    members = {}
    for k in range(1, 15):
        for eye in "LR":
            members[f"Image_{k:02d}{eye}.jpg"] = _encode(
                rng.integers(0, 256, (5, 6, 3), dtype=np.uint8), ".jpg"
            )
            members[f"Image_{k:02d}{eye}_1stHO.png"] = _encode(label, ".png")
            members[f"Image_{k:02d}{eye}_2ndHO.png"] = _encode(label, ".png")
    _zip(root / "CHASEDB1.zip", members)
    return label


def _make_hrf(root: Path) -> np.ndarray:
    rng = np.random.default_rng(12)
    label = rng.choice(np.array([0, 127, 128, 255], np.uint8), (5, 6))
    for part, short in (("healthy", "h"), ("glaucoma", "g"), ("diabetic_retinopathy", "dr")):
        ext = ".JPG" if short == "dr" else ".jpg"
        images = {
            f"{k:02d}_{short}{ext}": _encode(np.zeros((5, 6, 3), np.uint8), ".jpg")
            for k in range(1, 16)
        }
        _zip(root / f"{part}.zip", images)
        _zip(
            root / f"{part}_manualsegm.zip",
            {f"{k:02d}_{short}.tif": _encode(label, ".tif") for k in range(1, 16)},
        )
    return label


def _make_synapse(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import nibabel as nib

    rng = np.random.default_rng(13)
    (root / "img").mkdir(parents=True)
    (root / "label").mkdir()
    (root / "train.txt").write_text("img0001.nii.gz\n")
    (root / "val.txt").write_text("img0002.nii.gz\n")
    volumes = {}
    for case, depth in (("0001", 3), ("0002", 2)):
        i, j, k = np.meshgrid(np.arange(6), np.arange(5), np.arange(depth), indexing="ij")
        image = -200.0 + 20 * i + 10 * j + 50 * k  # smooth: JPEG keeps it close
        label = rng.integers(0, 14, (6, 5, depth)).astype(np.float64)
        nib.save(nib.Nifti1Image(image, np.eye(4)), root / "img" / f"img{case}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), root / "label" / f"label{case}.nii.gz")
        volumes[case] = (image, label)
    return volumes


def _make_refuge(root: Path) -> np.ndarray:
    rng = np.random.default_rng(14)
    jpg = _encode(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), ".jpg")
    mask = rng.choice(np.array([0, 128, 255, 7], np.uint8), (6, 8))
    bmp = _encode(np.repeat(mask[..., None], 3, 2), ".bmp")
    _zip(
        root / "REFUGE-Training400.zip",
        {"Training400/Glaucoma/g0001.jpg": jpg, "Training400/Non-Glaucoma/n0001.jpg": jpg},
    )
    _zip(
        root / "Annotation-Training400.zip",
        {
            "Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp": bmp,
            "Annotation-Training400/Disc_Cup_Fovea_Illustration/g0002.jpg": jpg,
            "__MACOSX/Annotation-Training400/Disc_Cup_Masks/Glaucoma/._g0001.bmp": b"resource fork",
        },
    )
    _zip(root / "REFUGE-Validation400.zip", {"REFUGE-Validation400/V0001.jpg": jpg})
    _zip(
        root / "REFUGE-Validation400-GT.zip",
        {"REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp": bmp},
    )
    return mask


def _make_nyu(root: Path, as_zip: bool) -> dict[str, bytes]:
    members = {
        "nyu/nyu_train.txt": b"/basement_0001a/rgb_00000.jpg /basement_0001a/sync_depth_00000.png 518.8579\n\n",
        "nyu/nyu_test.txt": b"bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 518.8579\n",
        "nyu/basement_0001a/rgb_00000.jpg": b"jpeg 0",
        "nyu/basement_0001a/sync_depth_00000.png": b"png 0",
        "nyu/bathroom/rgb_00045.jpg": b"jpeg 45",
        "nyu/bathroom/sync_depth_00045.png": b"png 45",
    }
    if as_zip:
        _zip(root / "nyu.zip", members)
    else:
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return {
        "images/train/basement_0001a_00000.jpg": b"jpeg 0",
        "annotations/train/basement_0001a_00000.png": b"png 0",
        "images/test/bathroom_00045.jpg": b"jpeg 45",
        "annotations/test/bathroom_00045.png": b"png 45",
    }


def _make_nyu_labelled(root: Path) -> dict:
    """A nyu/ folder (one sync training frame, test frame 0 of the .mat), a 5-frame
    nyu_depth_v2_labeled.mat written as MATLAB v7.3 lays it out (axes reversed), a
    classMapping40.mat and a splits.mat (train 2, 4; test 1, 3; frame 5 in neither)."""
    import h5py
    from scipy.io import savemat

    rng = np.random.default_rng(20)
    n, h, w = 5, 12, 16
    scenes = ["bathroom", "bedroom", "kitchen", "living_room", "office"]
    y, x = np.mgrid[0:h, 0:w]
    images = np.stack(
        [np.stack([40 + 5 * x + 10 * i, 60 + 8 * y, 200 - 4 * x - 3 * y], -1) for i in range(n)]
    ).astype(np.uint8)  # smooth RGB: JPEG keeps it close
    depths = rng.uniform(0.5, 9.5, (n, h, w)).astype(np.float32)
    raw_depths = np.where(rng.random((n, h, w)) < 0.2, 0, depths).astype(np.float32)
    labels = rng.integers(0, 895, (n, h, w)).astype(np.uint16)
    labels[:, 0, :3] = [0, 894, 1]
    mapping = rng.integers(1, 41, 894)
    root.mkdir(parents=True)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depths.transpose(0, 2, 1)
        f["rawDepths"] = raw_depths.transpose(0, 2, 1)
        f["labels"] = labels.transpose(0, 2, 1)
        refs = []
        for i, scene in enumerate(scenes):
            chars = np.array([[ord(c)] for c in scene], np.uint16)  # MATLAB char: (len, 1)
            refs.append(f.create_dataset(f"#refs#/{i}", data=chars).ref)
        f.create_dataset("sceneTypes", data=np.array([refs], dtype=h5py.ref_dtype))
    savemat(
        root / "classMapping40.mat",
        {
            "mapClass": mapping[None].astype(np.float64),
            "className": np.array([f"c{k}" for k in range(40)], dtype=object)[None],
        },
    )
    savemat(root / "splits.mat", {"trainNdxs": [[2], [4]], "testNdxs": [[1], [3]]})

    nyu_image = _encode(
        np.ascontiguousarray(images[0][..., ::-1]), ".jpg"
    )  # what BTS wrote for test frame 0
    nyu_depth = _encode(np.full((h, w), 1234, np.uint16), ".png")
    members = {
        "nyu_train.txt": b"/basement_0001a/rgb_00000.jpg /basement_0001a/sync_depth_00000.png 1\n",
        "nyu_test.txt": b"bathroom/rgb_00000.jpg bathroom/sync_depth_00000.png 518.8579\n",
        "basement_0001a/rgb_00000.jpg": _encode(np.ascontiguousarray(images[4][..., ::-1]), ".jpg"),
        "basement_0001a/sync_depth_00000.png": nyu_depth,
        "bathroom/rgb_00000.jpg": nyu_image,
        "bathroom/sync_depth_00000.png": nyu_depth,
    }
    for name, data in members.items():
        (root / "nyu" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "nyu" / name).write_bytes(data)
    return {
        "images": images,
        "depths": depths,
        "rawDepths": raw_depths,
        "labels": labels,
        "mapClass": mapping,
        "nyu_image": nyu_image,
        "nyu_depth": nyu_depth,
    }
