"""Datasets in their official layouts, label specifications, bad input, the DataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fakedata import make_ade20k, make_cityscapes, make_voc
from hydra.utils import instantiate

from segkit.data import LabelError, LabelSpec, SegCollate
from segkit.data.datasets import DatasetNotFoundError, SegmentationFolder
from segkit.data.io import CorruptFileError


def _datamodule(compose_cfg, data: str, root: Path):
    cfg = compose_cfg([f"data={data}", f"data.root={root}", "data.num_workers=0"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


def test_ade20k_reduces_zero_label(compose_cfg, tmp_path: Path) -> None:
    raws = make_ade20k(tmp_path / "ADEChallengeData2016")
    dm = _datamodule(compose_cfg, "ade20k", tmp_path / "ADEChallengeData2016")
    assert dm.num_classes == 150 and len(dm.class_names) == 150
    val = dm.datasets["val"]
    assert len(val) == 3 and len(dm.datasets["train"]) == 3
    sample = val[0]
    expected = np.where(raws[0] == 0, 255, raws[0] - 1)
    np.testing.assert_array_equal(sample["mask"], expected)
    # evaluation keeps the label at its original size while the image is rescaled to 2048x512
    assert sample["mask"].shape == (48, 64)
    assert sample["image"].shape == (512, 683, 3)
    train_sample = dm.datasets["train"][0]
    assert train_sample["image"].shape[:2] == train_sample["mask"].shape


def test_cityscapes_reads_train_ids_from_nested_cities(compose_cfg, tmp_path: Path) -> None:
    raws = make_cityscapes(tmp_path / "cityscapes")
    dm = _datamodule(compose_cfg, "cityscapes", tmp_path / "cityscapes")
    val = dm.datasets["val"]
    assert dm.num_classes == 19 and len(val) == 4
    assert Path(val.images[0]).name == "aachen_000000_000019_leftImg8bit.png"
    np.testing.assert_array_equal(val[0]["mask"], raws[0])


def test_voc_uses_split_files_and_palette_indices(compose_cfg, tmp_path: Path) -> None:
    raws = make_voc(tmp_path / "VOC2012")
    dm = _datamodule(compose_cfg, "voc", tmp_path / "VOC2012")
    val = dm.datasets["val"]
    assert dm.num_classes == 21 and len(val) == 3
    assert all("unlisted" not in str(p) for p in val.images)
    np.testing.assert_array_equal(val[1]["mask"], raws[1])  # ids, not palette colours


def test_missing_dataset_says_where_and_how(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(["data=ade20k", f"data.root={tmp_path / 'nowhere'}"])
    dm = instantiate(cfg.data)
    with pytest.raises(DatasetNotFoundError, match=r"nowhere/images/training.*sceneparsing"):
        dm.setup("fit")
    (tmp_path / "empty" / "images" / "training").mkdir(parents=True)
    cfg = compose_cfg(["data=ade20k", f"data.root={tmp_path / 'empty'}"])
    with pytest.raises(DatasetNotFoundError, match=r"no '\*\.jpg' images"):
        instantiate(cfg.data).setup("fit")


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    make_ade20k(tmp_path)
    bad = tmp_path / "images" / "training" / "ADE_train_00000001.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    ds = SegmentationFolder(
        tmp_path, "images/training", "annotations/training", LabelSpec(150, reduce_zero_label=True)
    )
    ds[0]  # the others are fine
    with pytest.raises(CorruptFileError, match=r"ADE_train_00000001\.jpg"):
        ds[1]


def test_label_outside_the_classes_names_file_and_value(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    path = sorted((tmp_path / "gtFine" / "train").rglob("*.png"))[0]
    from PIL import Image

    mask = np.zeros((32, 64), np.uint8)
    mask[3, 3] = 42
    Image.fromarray(mask).save(path)
    ds = SegmentationFolder(
        tmp_path,
        "leftImg8bit/train",
        "gtFine/train",
        LabelSpec(19),
        img_suffix="_leftImg8bit.png",
        ann_suffix="_gtFine_labelTrainIds.png",
    )
    with pytest.raises(LabelError, match=rf"{path.name}.*\[42\]"):
        ds[0]


def test_startup_check_catches_bad_labels_before_training(compose_cfg, tmp_path: Path) -> None:
    make_voc(tmp_path)
    from PIL import Image

    Image.fromarray(np.full((40, 56), 99, np.uint8)).save(
        tmp_path / "SegmentationClass" / "2007_train0000.png"
    )
    cfg = compose_cfg(["data=voc", f"data.root={tmp_path}"])
    with pytest.raises(LabelError, match=r"2007_train0000.png.*\[99\]"):
        instantiate(cfg.data).setup("fit")


def test_binary_255_mask_warns_instead_of_losing_the_foreground(caplog) -> None:
    spec = LabelSpec(num_classes=2, ignore_index=255)
    masks = [spec.apply(np.where(np.arange(64).reshape(8, 8) % 2, 255, 0).astype(np.uint8))]
    with caplog.at_level(logging.WARNING):
        spec.survey(masks)
    assert "label_map={255: 1}" in caplog.text
    fixed = LabelSpec(num_classes=2, ignore_index=255, label_map={255: 1})
    assert set(np.unique(fixed.apply(np.array([[0, 255]], np.uint8))).tolist()) == {0, 1}


def test_label_spec_maps_and_checks_wide_masks() -> None:
    spec = LabelSpec(num_classes=300, ignore_index=65535, label_map={1000: 299})
    raw = np.array([[0, 299, 1000, 65535]], np.int32)
    out = spec.apply(raw)
    assert out.dtype == np.int32 and out.tolist() == [[0, 299, 299, 65535]]
    with pytest.raises(LabelError, match=r"\[300\]"):
        spec.apply(np.array([[300]], np.int32))


def test_collate_pads_and_records_sizes() -> None:
    collate = SegCollate(ignore_index=255)
    samples = [
        {
            "image": np.full((4, 6, 3), 7, np.uint8),
            "mask": np.ones((4, 6), np.uint8),
            "meta": {"ori_shape": (4, 6)},
        },
        {
            "image": np.full((5, 3, 3), 9, np.uint8),
            "mask": np.ones((5, 3), np.uint8),
            "meta": {"ori_shape": (5, 3)},
        },
    ]
    batch = collate(samples)
    assert batch["image"].shape == (2, 3, 5, 6)
    assert batch["mask"].shape == (2, 5, 6)
    assert batch["mask"][0, 4].tolist() == [255] * 6 and batch["mask"][1, :, 3:].eq(255).all()
    assert [m["img_shape"] for m in batch["meta"]] == [(4, 6), (5, 3)]


def test_global_batch_size_is_divided_by_processes(compose_cfg, tmp_path: Path) -> None:
    from conftest import tiny_shapes

    cfg = compose_cfg(tiny_shapes(num_train=16, num_val=3))
    dm = instantiate(cfg.data)

    class FakeTrainer:
        world_size, global_rank = 2, 1

    dm.trainer = FakeTrainer()
    dm.setup("fit")
    train = dm.train_dataloader()
    assert train.batch_size == 2  # global 4 over 2 processes
    val = dm.val_dataloader()
    assert list(val.sampler) == [1]  # rank 1 of 2 over 3 samples: no padding, no repeats


def test_device_augment_moves_masks_with_images() -> None:
    import kornia.augmentation as K
    import torch

    from segkit.data.device_augment import DeviceAugment

    aug = DeviceAugment(
        [K.RandomHorizontalFlip(p=1.0), K.RandomAffine(degrees=0, translate=(0.25, 0.0), p=1.0)]
    )
    images = torch.zeros(2, 3, 16, 16)
    images[:, :, :, :4] = 255.0
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    masks[:, :, :4] = 3
    out_images, out_masks, _ = aug(images, masks)
    assert out_masks.shape == masks.shape and out_masks.dtype == torch.long
    # the labelled stripe moved exactly where the bright stripe moved
    bright = out_images[:, 0] > 127
    assert torch.equal(bright, out_masks == 3)
    # pixels shifted in from outside the image are ignored, not class 0
    assert (out_masks == 255).any()
    assert set(out_masks.unique().tolist()) <= {0, 3, 255}
