"""SegDataModule: datasets, pipelines and loaders for training, validation and testing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from segkit.data import download as downloads
from segkit.data.collate import SegCollate
from segkit.data.datasets.folder import DatasetNotFoundError
from segkit.data.labels import LabelSpec
from segkit.data.sampling import EpochSampler, ResumableDataLoader, ShardSampler

__all__ = ["SegDataModule"]

log = logging.getLogger(__name__)

DatasetFactory = Callable[..., Dataset]


class SegDataModule(L.LightningDataModule):
    """Builds the datasets from config factories and serves batched, padded loaders.

    Args:
        train, val, test: dataset factories (Hydra ``_partial_`` nodes) completed here with
            ``transform=`` and ``keep_original_mask=``; ``test`` defaults to ``val``.
        train_transform, val_transform: albumentations pipelines from the YAML.
        labels: the label specification (also given to the dataset factories in YAML).
        batch_size: global training batch size, divided by the number of processes.
        val_batch_size: global evaluation batch size (any image sizes: batches are padded).
        num_workers: loader workers per process.
        class_names, palette: the label space, for reports and checkpoints.
        label_check_samples: how many label maps ``setup`` samples to survey the label values.
        root: where the data lives (the factories interpolate it; downloads go there).
        name: a short name for logs (per-dataset metrics of mixed runs).
        resources: the files of a dataset with public URLs (:class:`segkit.data.download.Resource`
            fields: url, checksums, size, extraction), fetched into ``root``.
        download: fetch ``resources`` (or call ``downloader``) in ``prepare_data`` when the data
            is missing (once per node); then run ``convert`` on what was fetched.
        mirror: replaces the scheme and host of every resource URL (an internal mirror).
        downloader: for datasets behind a login: fetches with the user's
            credentials, called as ``downloader(root=, mirror=)`` (e.g.
            :func:`segkit.data.download.download_cityscapes`).
        convert: ``convert(src=, dst=)`` turning the raw download into the layout read here
            (``segkit-data convert`` calls it too).
        how_to_get: how to obtain the data by hand; datasets missing files say it.
        crop_size, scale: the training crop ``(h, w)`` and rescale ``(long, short)`` that the
            pipelines interpolate (for reports).
        test_resize: the keep-ratio ``(long, short)`` evaluation size that ``val_transform``
            and the model's ``test_cfg.resize`` interpolate (``None``: original size).
        size_divisor: pad batches to a multiple of this.
        seed: the training order and augmentations are a function of it (see
            :mod:`segkit.data.sampling`), so a resumed run sees the same batches.
    """

    def __init__(
        self,
        train: DatasetFactory | None,
        val: DatasetFactory | None,
        labels: LabelSpec,
        test: DatasetFactory | None = None,
        train_transform: Callable | None = None,
        val_transform: Callable | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        label_check_samples: int = 16,
        root: str | None = None,
        test_resize: Sequence[int] | None = None,
        size_divisor: int = 1,
        seed: int = 0,
        name: str | None = None,
        resources: Sequence[Mapping[str, Any]] | None = None,
        download: bool = False,
        mirror: str | None = None,
        downloader: Callable[..., Any] | None = None,
        convert: Callable[..., Any] | None = None,
        how_to_get: str = "",
        crop_size: Sequence[int] | None = None,
        scale: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.resources = [dict(r) for r in resources or ()]
        self.download = download
        self.mirror = mirror
        self.downloader = downloader
        self.convert = convert
        self.how_to_get = how_to_get
        self.crop_size = list(crop_size) if crop_size is not None else None
        self.scale = list(scale) if scale is not None else None
        self.factories = {"train": train, "val": val, "test": test or val}
        self.transforms = {"train": train_transform, "val": val_transform, "test": val_transform}
        self.labels = labels
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = [list(c) for c in palette] if palette is not None else None
        self.label_check_samples = label_check_samples
        self.seed = seed
        self.root = root
        self.test_resize = list(test_resize) if test_resize is not None else None
        self.collate = SegCollate(ignore_index=labels.ignore_index, size_divisor=size_divisor)
        self.datasets: dict[str, Dataset] = {}
        if self.class_names is not None and len(self.class_names) != labels.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names for {labels.num_classes} classes"
            )

    @property
    def eval_names(self) -> list[str]:
        """Names of the evaluation sets, one per validation/test loader."""
        return [self.name or "data"]

    def has_split(self, split: str) -> bool:
        return self.factories[split] is not None

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    @property
    def ignore_index(self) -> int:
        return self.labels.ignore_index

    def build(self, split: str) -> Dataset:
        """The dataset of ``split`` with its pipeline (evaluation splits keep original labels)."""
        factory = self.factories[split]
        if factory is None:
            raise ValueError(f"this data config has no {split!r} split")
        return factory(transform=self.transforms[split], keep_original_mask=split != "train")

    def fetch(self) -> bool:
        """Download the dataset into ``root`` (resources, or the login ``downloader``), then
        convert it; True when something was fetched, False when everything was in place."""
        if self.root is None:
            raise ValueError("data.root is not set: where should the data go?")
        if self.downloader is not None:
            self.downloader(root=self.root, mirror=self.mirror)
            fetched = True
        elif self.resources:
            fetched = downloads.fetch(self.resources, self.root, mirror=self.mirror)
        else:
            try:  # generated datasets (shapes) or data already in place
                self._build_all()
            except DatasetNotFoundError:
                raise downloads.ManualDownloadRequired(
                    f"this dataset has no public download; get it by hand into {self.root}. "
                    f"{self.how_to_get}"
                ) from None
            return False
        if fetched and self.convert is not None:
            self.convert(src=self.root, dst=self.root)
        return fetched

    def prepare_data(self) -> None:
        # Runs once per node before setup on every rank: datasets that generate their files do
        # it when first built; missing datasets are downloaded here when data.download=true.
        try:
            self._build_all()
        except DatasetNotFoundError:
            if not self.download:
                raise
            log.info("%s is missing under %s: downloading", self.name or "dataset", self.root)
            self.fetch()
            self._build_all()

    def _build_all(self) -> None:
        for split in ("train", "val"):
            if self.has_split(split):
                self.build(split)

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "fit", ("train", "val")
        )
        for split in splits:
            if split not in self.datasets and self.has_split(split):
                self.datasets[split] = self.build(split)
        if "train" in splits and "train" in self.datasets:
            self.check_labels(self.datasets["train"])

    def check_labels(self, dataset: Dataset) -> dict[int, float]:
        """Map and check a sample of label maps at start-up (every value must be a class or the
        ignore index; raises naming the file), and survey the class frequencies."""
        load = getattr(dataset, "load_mask", None)
        if load is None or getattr(dataset, "masks", ()) is None or self.label_check_samples <= 0:
            return {}
        n = len(dataset)
        picks = np.linspace(0, n - 1, min(n, self.label_check_samples)).round().astype(int)
        return self.labels.survey([load(int(i)) for i in sorted(set(picks))])

    # ------------------------------------------------------------------ loaders
    @property
    def world_size(self) -> int:
        return self._rank()[0]

    def _per_process(self, global_batch: int) -> int:
        if global_batch % self.world_size:
            raise ValueError(
                f"batch size {global_batch} is global and must divide by the {self.world_size} "
                "processes"
            )
        return global_batch // self.world_size

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.datasets.get(split) or self.build(split)
        self.datasets[split] = dataset
        world_size, rank = self._rank()
        common = {
            "batch_size": self._per_process(batch_size),
            "num_workers": self.num_workers,
            "collate_fn": self.collate,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
        }
        if shuffle:
            sampler = self._train_sampler(dataset, world_size, rank)
            return ResumableDataLoader(dataset, sampler=sampler, drop_last=True, **common)
        return self._eval_loaders(dataset, world_size, rank, common)

    def _train_sampler(self, dataset: Dataset, world_size: int, rank: int) -> EpochSampler:
        return EpochSampler(len(dataset), self.seed, True, world_size, rank)  # type: ignore[arg-type]

    def _eval_loaders(
        self, dataset: Dataset, world_size: int, rank: int, common: dict[str, Any]
    ) -> Any:
        """The evaluation loader of ``dataset`` (a mix returns one per source)."""
        return DataLoader(dataset, sampler=ShardSampler(len(dataset), world_size, rank), **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, shuffle=False)
