"""Several datasets in one run: label-space mapping, weighted sampling, per-dataset metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from fakedata import make_cityscapes, make_mapillary
from hydra.utils import instantiate

from segkit.cli.train import train
from segkit.data.mixing import WeightedMixSampler, label_lut


def test_label_lut_maps_by_name_and_table_and_ignores_the_rest() -> None:
    lut = label_lut(
        ["sky", "Road", "Bird", "car"],
        ["road", "car", "sky"],
        {"Road": "road", "Bird": None},
        source_ignore=255,
        common_ignore=255,
    )
    assert lut[[0, 1, 2, 3, 255]].tolist() == [2, 0, 255, 1, 255]
    # a source class that exists nowhere in the common set is ignored, not kept
    assert label_lut(["tree"], ["road"], None, 255, 255)[0] == 255
    with pytest.raises(ValueError, match="Raod"):
        label_lut(["Road"], ["road"], {"Raod": "road"}, 255, 255)
    with pytest.raises(ValueError, match="rood"):
        label_lut(["Road"], ["road"], {"Road": "rood"}, 255, 255)


def test_weighted_sampler_follows_weights_not_dataset_sizes() -> None:
    sampler = WeightedMixSampler([5, 200], [3.0, 1.0], samples_per_epoch=4000, seed=1)
    indices = np.array([i for i, _ in sampler])
    assert len(indices) == 4000
    small = indices < 5
    assert abs(small.mean() - 0.75) < 0.03  # 3:1 although the first source is 40x smaller
    # within a source every sample is drawn once before any repeats
    first = indices[~small][:200]
    assert sorted(first.tolist()) == list(range(5, 205))
    # a pure function of (seed, epoch): same order again, a new order next epoch
    assert np.array_equal([i for i, _ in sampler], indices)
    sampler.set_epoch(1)
    assert not np.array_equal([i for i, _ in sampler], indices)


def test_weighted_sampler_shards_and_resumes() -> None:
    full = list(WeightedMixSampler([7, 9], [1.0, 1.0], 40, seed=3))
    ranks = [
        list(WeightedMixSampler([7, 9], [1.0, 1.0], 40, seed=3, world_size=2, rank=r))
        for r in (0, 1)
    ]
    assert ranks[0] + ranks[1] != full and sorted(ranks[0] + ranks[1]) == sorted(full)
    assert ranks[0] == full[0::2] and ranks[1] == full[1::2]
    resumed = WeightedMixSampler([7, 9], [1.0, 1.0], 40, seed=3)
    resumed.start = 12
    assert list(resumed) == full[12:]
    with pytest.raises(ValueError, match="empty"):
        WeightedMixSampler([0, 9], [1.0, 1.0], 10)


def _mix_overrides(tmp_path: Path) -> list[str]:
    make_cityscapes(tmp_path / "cs", n=2, size=(32, 64))
    make_mapillary(tmp_path / "mv", n=2, size=(32, 64))
    small = []
    for source in ("cityscapes", "mapillary"):
        small += [
            f"data.sources.{source}.scale=[64,32]",
            f"data.sources.{source}.crop_size=[32,32]",
            f"data.sources.{source}.test_resize=[64,32]",
        ]
    return [
        "data=mix",
        f"data.sources.cityscapes.root={tmp_path / 'cs'}",
        f"data.sources.mapillary.root={tmp_path / 'mv'}",
        *small,
        "data.batch_size=4",
        "data.val_batch_size=2",
        "data.samples_per_epoch=16",
    ]


def test_mix_datamodule_remaps_mapillary_into_cityscapes_classes(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg([*TINY, *_mix_overrides(tmp_path)])
    dm = instantiate(cfg.data, _convert_="partial")
    assert dm.num_classes == 19 and dm.eval_names == ["cityscapes", "mapillary"]
    dm.setup("fit")
    mixed = dm.datasets["train"]
    assert len(mixed) == 6  # 2 cities x 2 Cityscapes + 2 Mapillary samples
    # Mapillary raw 13 'Road' -> road 0, 0 'Bird' -> ignore, 55 'Car' -> car 13
    raw = np.array([[13, 0, 55, 65]], dtype=np.uint8)
    lut = dm.luts["mapillary"]
    assert lut[raw].tolist() == [[0, 255, 13, 255]]
    loaders = dm.val_dataloader()
    assert len(loaders) == 2
    batch = next(iter(loaders[1]))
    values = set(batch["mask"].unique().tolist())
    assert values <= set(range(19)) | {255} and 0 in values
    assert batch["meta"][0]["source"] == "mapillary"


def test_train_on_a_mix_logs_metrics_per_dataset(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg([*TINY, *_mix_overrides(tmp_path), "trainer.max_steps=2"])
    torch.manual_seed(0)
    train(cfg)
    metrics = (Path(cfg.paths.output_dir) / "csv").rglob("metrics.csv")
    header = next(iter(sorted(metrics))).read_text().splitlines()[0].split(",")
    for name in ("val/mIoU", "val/cityscapes/mIoU", "val/mapillary/mIoU", "val/cityscapes/aAcc"):
        assert name in header, header
