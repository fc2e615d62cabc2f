"""Depth data: batching, the generated shapes_depth set, the KITTI Eigen reader and depth-aware
augmentation (CPU albumentations pipelines and the on-device kornia one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from segkit.data.collate import SegCollate
from segkit.data.datasets.folder import DatasetNotFoundError, SegmentationFolder
from segkit.data.datasets.kitti import KBCrop, KittiDepth
from segkit.data.datasets.shapes_depth import (
    SHAPES_DEPTH_CLASSES,
    ShapesDepth,
    ensure_shapes_depth,
    render_depth_scene,
)
from segkit.data.io import read_depth
from segkit.data.labels import LabelSpec
from segkit.data.transforms import CatMaxRandomCrop, Rescale


# --------------------------------------------------------------------------- batching
def test_collate_pads_depth_with_zero_without_masks() -> None:
    d1 = np.full((4, 6), 2.5, np.float32)
    d2 = np.arange(15, dtype=np.float32).reshape(5, 3) + 1
    samples = [
        {"image": np.zeros((4, 6, 3), np.uint8), "depth": d1, "meta": {"ori_shape": (4, 6)}},
        {"image": np.zeros((5, 3, 3), np.uint8), "depth": d2, "meta": {"ori_shape": (5, 3)}},
    ]
    batch = SegCollate(ignore_index=255, size_divisor=4)(samples)
    assert "mask" not in batch
    depth = batch["depth"]
    assert depth.dtype == torch.float32 and depth.shape == (2, 8, 8)
    assert torch.equal(depth[0, :4, :6], torch.from_numpy(d1))
    assert torch.equal(depth[1, :5, :3], torch.from_numpy(d2))
    assert depth[0, 4:].eq(0).all() and depth[0, :, 6:].eq(0).all()
    assert depth[1, 5:].eq(0).all() and depth[1, :, 3:].eq(0).all()
    assert [m["img_shape"] for m in batch["meta"]] == [(4, 6), (5, 3)]


def test_collate_fills_targets_a_sample_lacks() -> None:
    """A mix of a segmentation-only and a depth-only sample: each target is kept, the sample
    without it gets an all-ignored mask / all-invalid depth of its label size."""
    samples = [
        {
            "image": np.zeros((4, 4, 3), np.uint8),
            "mask": np.ones((4, 4), np.uint8),
            "meta": {"ori_shape": (4, 4)},
        },
        {
            "image": np.zeros((2, 2, 3), np.uint8),  # resized for evaluation, labels stay 3x5
            "depth": np.full((3, 5), 7.0, np.float32),
            "meta": {"ori_shape": (3, 5)},
        },
    ]
    batch = SegCollate(ignore_index=255)(samples)
    assert batch["mask"].shape == batch["depth"].shape == (2, 4, 5)
    assert batch["mask"][0, :, :4].eq(1).all() and batch["mask"][1].eq(255).all()
    assert batch["depth"][0].eq(0).all()
    assert batch["depth"][1, :3, :5].eq(7).all() and batch["depth"][1, 3:].eq(0).all()


# --------------------------------------------------------------------------- shapes_depth
def test_shapes_depth_scene_geometry_is_exact() -> None:
    """Ground depth follows the pinhole model (1/depth linear in the row, equal along a row),
    the wall is one plane at the far end, objects stand in front of it; deterministic."""
    size = 64
    for seed in range(4):
        image, label, depth = render_depth_scene(seed, size)
        again = render_depth_scene(seed, size)
        assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
        assert np.array_equal(depth, again[2])
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert depth.min() >= 0.5 and depth.max() < 10.0
        assert set(np.unique(label).tolist()) <= set(range(len(SHAPES_DEPTH_CLASSES)))
        wall = depth[label == 1]
        assert wall.size and np.ptp(wall) == 0  # one fronto-parallel plane
        assert (depth[label >= 2] < wall[0]).all()  # objects stand in front of the wall
        rows, cols = np.nonzero(label == 0)
        inverse = 1.0 / depth[rows, cols]
        slope, offset = np.polyfit(rows + 0.5, inverse, 1)  # 1/z = (y - y_h) / (f h)
        np.testing.assert_allclose(inverse, slope * (rows + 0.5) + offset, rtol=1e-9, atol=1e-12)
        assert slope > 0  # nearer towards the bottom
        horizon, cam_height = -offset / slope, 1.0 / (slope * size)
        assert 0.3 * size <= horizon <= 0.5 * size and 0.5 <= cam_height <= 1.5


def test_shapes_depth_dataset_on_disk(compose_cfg: Callable, tmp_path: Path) -> None:
    cfg = compose_cfg(
        [
            "data=shapes_depth",
            "data.train.num_train=4",
            "data.train.num_val=2",
            "data.train.size=32",
            "data.batch_size=2",
            "data.val_batch_size=2",
            "data.num_workers=0",
        ]
    )
    dm = instantiate(cfg.data)
    assert dm.num_classes == len(dm.class_names) == len(dm.palette) == 8
    dm.setup("fit")
    val = dm.datasets["val"]
    assert len(dm.datasets["train"]) == 4 and len(val) == 2
    _, label, depth = render_depth_scene(10_000_000 + 1, 32)  # val sample 1 of seed 0
    sample = val[1]
    assert np.array_equal(sample["mask"], label)
    np.testing.assert_allclose(sample["depth"], depth, atol=0.5e-3 + 1e-6)  # millimetres
    assert sample["depth"].dtype == np.float32
    batch = next(iter(dm.val_dataloader()))
    assert batch["depth"].shape == batch["mask"].shape == (2, 32, 32)
    assert batch["depth"].dtype == torch.float32 and (batch["depth"] > 0).all()
    train = dm.datasets["train"][0]
    assert train["image"].shape == (32, 32, 3) and train["depth"].shape == (32, 32)
    # generated once: a second build reuses the folder; depth-only drops the masks
    folder = ensure_shapes_depth(cfg.data.root, 4, 2, 32, 0)
    depth_only = ShapesDepth(cfg.data.root, "val", dm.labels, 4, 2, 32, with_labels=False)
    assert Path(depth_only.root) == folder and "mask" not in depth_only[0]
    assert sorted(p.name for p in folder.iterdir()) == [
        "annotations",
        "depth",
        "images",
        "meta.json",
    ]


# --------------------------------------------------------------------------- KITTI
DRIVE = "2011_09_26_drive_0001_sync"
FRAMES = ["0000000005", "0000000006", "0000000007"]


def _kitti_tree(root: Path, size: tuple[int, int] = (375, 1242)) -> dict[str, np.ndarray]:
    """Raw frames and 16-bit annotated depth (two in train/, one in val/), a split file with a
    focal column and a frame without ground truth. Returns the stored depth per frame."""
    rng = np.random.default_rng(0)
    h, w = size
    stored = {}
    for i, frame in enumerate(FRAMES):
        image = root / "2011_09_26" / DRIVE / "image_02" / "data" / f"{frame}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        ramp = np.broadcast_to(np.linspace(0, 255, w).astype(np.uint8), (h, w))
        cv2.imwrite(str(image), np.dstack([ramp, ramp, ramp]))
        raw = np.zeros((h, w), np.uint16)  # sparse: ~5% measured
        hits = rng.random((h, w)) < 0.05
        raw[hits] = rng.integers(256, 80 * 256, hits.sum())
        split = "val" if i == 2 else "train"
        path = root / "data_depth_annotated" / split / DRIVE / "proj_depth/groundtruth/image_02"
        path.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path / f"{frame}.png"), raw)
        stored[frame] = raw
    lines = [
        f"2011_09_26/{DRIVE}/image_02/data/{f}.png "
        f"{DRIVE}/proj_depth/groundtruth/image_02/{f}.png 721.5377"
        for f in FRAMES
    ]
    lines.insert(1, f"2011_09_26/{DRIVE}/image_02/data/0000000099.png None 721.5377")
    for name in ("eigen_train_files_with_gt.txt", "eigen_test_files_with_gt.txt"):
        (root / name).write_text("\n".join(lines) + "\n")
    return stored


def test_kitti_reader_pairs_split_file_lines(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    stored = _kitti_tree(root, size=(12, 20))
    ds = KittiDepth(root, "eigen_test_files_with_gt.txt")
    assert len(ds) == 3 and ds.skipped == 1  # the "None" line has no ground truth
    assert "val" in str(ds.depths[2])  # found in the second depth folder
    for i, frame in enumerate(FRAMES):
        sample = ds[i]
        assert sample["image"].shape == (12, 20, 3) and "mask" not in sample
        np.testing.assert_array_equal(sample["depth"], stored[frame].astype(np.float32) / 256)
        assert (sample["depth"] == 0).any() and sample["depth"].max() < 80
    missing = root / "2011_09_26" / DRIVE / "image_02" / "data" / f"{FRAMES[1]}.png"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{FRAMES[1]}.png is missing"):
        KittiDepth(root, "eigen_test_files_with_gt.txt")
    lenient = KittiDepth(root, "eigen_test_files_with_gt.txt", strict=False)
    assert len(lenient) == 2 and lenient.missing == [missing]


def test_kb_crop_takes_bottom_rows_and_centred_columns() -> None:
    image = np.arange(375 * 1242, dtype=np.int64).reshape(375, 1242) % 251
    depth = (np.arange(375 * 1242, dtype=np.float32).reshape(375, 1242) + 1) / 256
    out = A.Compose([KBCrop()], additional_targets={"depth": "mask"})(
        image=image.astype(np.uint8), depth=depth
    )
    assert out["image"].shape == out["depth"].shape == (352, 1216)
    np.testing.assert_array_equal(out["image"], image[23:, 13:1229])
    np.testing.assert_array_equal(out["depth"], depth[23:, 13:1229])
    with pytest.raises(ValueError, match="smaller"):
        KBCrop()(image=np.zeros((300, 1242), np.uint8))


def test_kitti_eigen_config_trains_on_kb_crops(compose_cfg: Callable, tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    stored = _kitti_tree(root)
    cfg = compose_cfg(["data=kitti_eigen", f"data.root={root}", "data.num_workers=0"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == len(dm.datasets["val"]) == 3
    values = set((np.unique(np.concatenate([v.ravel() for v in stored.values()])) / 256).tolist())
    for key in range(3):
        sample = dm.datasets["train"][(key, 7)]
        assert sample["image"].shape == (352, 704, 3) and sample["depth"].shape == (352, 704)
        assert set(np.unique(sample["depth"]).tolist()) <= values  # moved, never interpolated
    batch = next(iter(dm.val_dataloader()))  # evaluation: full frames, depth untouched
    assert batch["image"].shape == (1, 3, 375, 1242) and batch["depth"].shape == (1, 375, 1242)
    np.testing.assert_array_equal(batch["depth"][0].numpy(), stored[FRAMES[0]] / 256)


# --------------------------------------------------------------------------- augmentation
def _coded(size: int = 24, classes: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image, a mask of classes 1..classes-1 in blocks and depth = class id (metres): after
    any geometric transform depth must still equal the mask's class (0 where new)."""
    mask = (
        (np.arange(size)[:, None] // 6 + np.arange(size)[None] // 4) % (classes - 1) + 1
    ).astype(np.uint8)
    image = np.dstack([mask * 40, np.tile(np.arange(size, dtype=np.uint8) * 9, (size, 1)), mask])
    return image.astype(np.uint8), mask, mask.astype(np.float32)


GEOMETRIC = {
    "hflip": A.HorizontalFlip(p=1.0),
    "vflip": A.VerticalFlip(p=1.0),
    "rot90": A.RandomRotate90(p=1.0),
    "rotate": A.Rotate(limit=(25, 25), border_mode=cv2.BORDER_CONSTANT, p=1.0),
    "affine": A.Affine(scale=(0.7, 0.7), rotate=(10, 10), translate_px=(3, 3), p=1.0),
    "random_scale": A.RandomScale(scale_limit=(0.6, 0.6), p=1.0),
    "rescale": Rescale(scale=(40, 40), ratio_range=(0.5, 2.0)),
    "crop": CatMaxRandomCrop(height=16, width=16),
    "pad": A.PadIfNeeded(min_height=32, min_width=32, border_mode=cv2.BORDER_CONSTANT),
    "kitti_rotate": A.Rotate(limit=(-1, 1), mask_interpolation=0, border_mode=0, fill_mask=0),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_albumentations_geometric_moves_depth_like_the_mask(name: str) -> None:
    image, mask, depth = _coded()
    pipeline = A.Compose([GEOMETRIC[name]], seed=3)
    pipeline.add_targets({"depth": "mask"})  # what SegmentationFolder does
    out = pipeline(image=image, mask=mask, depth=depth)
    assert out["depth"].dtype == np.float32 and out["depth"].shape == out["mask"].shape
    np.testing.assert_array_equal(out["depth"], out["mask"].astype(np.float32))
    assert set(np.unique(out["depth"]).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_albumentations_resize_changes_the_grid_not_the_values() -> None:
    image, mask, depth = _coded()
    depth = depth * 1.37
    pipeline = A.Compose([A.Resize(48, 36)])
    pipeline.add_targets({"depth": "mask"})
    out = pipeline(image=image, mask=mask, depth=depth)
    assert out["depth"].shape == (48, 36)
    assert set(np.unique(out["depth"]).tolist()) == set(np.unique(depth).tolist())


def test_albumentations_photometric_leaves_depth_alone() -> None:
    image, mask, depth = _coded()
    depth = depth * 1.37
    pipeline = A.Compose(
        [
            A.RandomBrightnessContrast(p=1.0),
            A.ColorJitter(p=1.0),
            A.RandomGamma(p=1.0),
            A.HueSaturationValue(p=1.0),
            A.GaussNoise(p=1.0),
            A.MultiplicativeNoise(per_channel=True, p=1.0),
        ]
    )
    pipeline.add_targets({"depth": "mask"})
    out = pipeline(image=image, mask=mask, depth=depth)
    assert not np.array_equal(out["image"], image)
    np.testing.assert_array_equal(out["depth"], depth)


def test_folder_dataset_flips_depth_with_the_image(tmp_path: Path) -> None:
    image, mask, _ = _coded()
    depth_mm = (mask.astype(np.uint16) * 1000 + np.arange(24, dtype=np.uint16)).astype(np.uint16)
    for folder, array in (("img", image[..., ::-1]), ("ann", mask), ("depth", depth_mm)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), array)
    spec = LabelSpec(num_classes=5)
    common = {"img_dir": "img", "ann_dir": "ann", "labels": spec, "img_suffix": ".png"}
    plain = SegmentationFolder(tmp_path, depth_dir="depth", **common)[0]
    np.testing.assert_array_equal(plain["depth"], read_depth(tmp_path / "depth/a.png", 1000.0))
    flip = A.Compose([A.HorizontalFlip(p=1.0), A.RandomBrightnessContrast(p=1.0)])
    flipped = SegmentationFolder(tmp_path, depth_dir="depth", transform=flip, **common)[0]
    np.testing.assert_array_equal(flipped["depth"], plain["depth"][:, ::-1])
    np.testing.assert_array_equal(flipped["mask"], plain["mask"][:, ::-1])
    # evaluation: the transform resizes the image only; depth stays at its original size
    resize = A.Compose([A.Resize(12, 12)])
    kept = SegmentationFolder(
        tmp_path, depth_dir="depth", transform=resize, keep_original_mask=True, **common
    )[0]
    assert kept["image"].shape == (12, 12, 3)
    np.testing.assert_array_equal(kept["depth"], plain["depth"])


def test_device_augment_moves_depth_with_masks_and_images() -> None:
    import kornia.augmentation as K

    from segkit.data.device_augment import DeviceAugment

    torch.manual_seed(0)
    aug = DeviceAugment(
        [
            K.RandomHorizontalFlip(p=1.0),
            K.RandomAffine(degrees=20, translate=(0.2, 0.1), scale=(0.6, 1.4), p=1.0),
            K.ColorJiggle(0.2, 0.2, 0.2, 0.05, p=1.0),
        ],
        ignore_index=255,
    )
    masks = (torch.arange(32)[:, None] // 5 + torch.arange(32)[None] // 7) % 4
    masks = masks.expand(3, 32, 32).clone()
    lut = torch.tensor([1.5, 2.25, 4.0, 7.75])  # metres per class; new pixels: 0
    depth = lut[masks]
    images = masks[:, None].float().expand(3, 3, 32, 32) * 60
    _, out_masks, out_depth = aug(images, masks, depth)
    assert out_depth.shape == depth.shape and out_depth.dtype == torch.float32
    assert (out_masks == 255).any()  # the affine shift brought in new pixels
    expected = torch.where(out_masks == 255, 0.0, lut[out_masks.clamp(max=3)])
    assert torch.equal(out_depth, expected)  # same nearest grid, zero where padded
    # depth only (no masks): the same geometry, masks come back as None
    torch.manual_seed(1)
    _, none_masks, depth_only = aug(images, None, depth)
    assert none_masks is None
    assert set(depth_only.unique().tolist()) <= {0.0, *lut.tolist()}
    # intensity transforms change the image only
    photometric = DeviceAugment([K.ColorJiggle(0.3, 0.3, 0.3, 0.1, p=1.0)])
    new_images, _, same_depth = photometric(images, masks, depth)
    assert not torch.equal(new_images, images) and torch.equal(same_depth, depth)
