"""Training on several datasets at once: weighted sampling and one common label space.

Each source is a complete data config (its own folders, label specification and pipelines),
composed under ``data.sources`` (see ``conf/data/mix.yaml``). Its training ids are translated to
the common classes by name (``class_maps`` states the names that differ; a source class with no
common class becomes the ignore index), so the model never sees a source's own numbering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from segkit.data.datamodule import SegDataModule
from segkit.data.datasets.concat import Concatenation
from segkit.data.labels import LabelSpec
from segkit.data.sampling import EpochSampler, ShardSampler

__all__ = ["MixDataModule", "MixedDataset", "RemappedDataset", "WeightedMixSampler", "label_lut"]

log = logging.getLogger(__name__)


def label_lut(
    source_names: Sequence[str],
    common_names: Sequence[str],
    class_map: Mapping[str, str | None] | None,
    source_ignore: int,
    common_ignore: int,
) -> np.ndarray:
    """A lookup table from a source's training ids to the common ones.

    Source class ``c`` goes to ``class_map[c]`` when stated (``None``: ignore), else to the common
    class of the same name, else to ``common_ignore``. Raises when ``class_map`` names a class that
    exists on neither side (a typo would otherwise silently drop a class).
    """
    class_map = dict(class_map or {})
    unknown_src = sorted(set(class_map) - set(source_names))
    unknown_dst = sorted({v for v in class_map.values() if v is not None} - set(common_names))
    if unknown_src or unknown_dst:
        raise ValueError(
            f"class_map names unknown classes: source {unknown_src}, common {unknown_dst}"
        )
    common = {name: i for i, name in enumerate(common_names)}
    size = max(len(source_names), source_ignore + 1)
    lut = np.full(size, common_ignore, dtype=np.int64)
    for i, name in enumerate(source_names):
        target = class_map.get(name, name)
        lut[i] = common.get(target, common_ignore) if target is not None else common_ignore
    return lut


class RemappedDataset(Dataset):
    """A source dataset whose masks are translated through ``lut`` (see :func:`label_lut`)."""

    def __init__(self, dataset: Dataset, lut: np.ndarray, name: str, dtype: type) -> None:
        self.dataset = dataset
        self.lut = lut
        self.name = name
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _remap(self, mask: np.ndarray) -> np.ndarray:
        return self.lut[mask].astype(self.dtype)

    def load_mask(self, index: int) -> np.ndarray:
        return self._remap(self.dataset.load_mask(index))  # type: ignore[attr-defined]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        sample = self.dataset[key]
        if "mask" in sample:
            sample["mask"] = self._remap(sample["mask"])
        sample["meta"]["source"] = self.name
        return sample


class MixedDataset(Concatenation):
    """The concatenation of remapped sources; index ``i`` runs through them in order."""

    def __init__(self, sources: Sequence[RemappedDataset]) -> None:
        super().__init__(sources)
        self.sources: list[RemappedDataset] = self.parts  # type: ignore[assignment]


class WeightedMixSampler(EpochSampler):
    """Yields ``(global index, augmentation seed)`` for a :class:`MixedDataset`: each draw picks a
    source with probability proportional to its weight, then that source's next sample in a
    fresh permutation (every sample of a source is seen once before any is repeated).

    The epoch has ``samples_per_epoch`` draws whatever the sources' sizes; like
    :class:`EpochSampler` it is a pure function of ``(seed, epoch)``, sharded over processes, and
    resumable mid-epoch.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        samples_per_epoch: int,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
    ) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError(f"{len(sizes)} sources and {len(weights)} weights")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"mixing weights must be >= 0 with a positive sum, got {weights}")
        if any(n == 0 for n, w in zip(sizes, weights) if w > 0):
            raise ValueError(f"a source with a positive weight is empty: sizes {sizes}")
        super().__init__(samples_per_epoch, seed, True, world_size, rank)
        self.sizes = list(sizes)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.offsets = np.cumsum([0, *self.sizes]).tolist()

    def draws(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's ``(global indices, augmentation seeds)`` before sharding."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        source = torch.multinomial(self.weights, self.length, replacement=True, generator=g)
        indices = torch.empty(self.length, dtype=torch.int64)
        for s, size in enumerate(self.sizes):
            where = (source == s).nonzero().flatten()
            if not len(where):
                continue
            passes = -(-len(where) // size)
            order = torch.cat([torch.randperm(size, generator=g) for _ in range(passes)])
            indices[where] = order[: len(where)] + self.offsets[s]
        seeds = torch.randint(0, 2**31 - 1, (self.length,), generator=g)
        return indices, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.draws()
        stop = len(self) * self.world_size
        mine = range(self.rank, stop, self.world_size)
        start, self.start = self.start, 0
        for k in list(mine)[start:]:
            yield int(indices[k]), int(seeds[k])


class MixDataModule(SegDataModule):
    """Several data configs trained as one, in a common label space.

    Args:
        sources: ``{name: SegDataModule}``, each a complete data config (composed from
            ``conf/data``); their own pipelines are used unless ``train_transform`` is given.
        labels, class_names, palette: the common label space.
        weights: ``{name: weight}`` sampling weights (default: equal).
        class_maps: ``{name: {source class: common class or None}}`` for names that differ.
        samples_per_epoch: length of a training epoch (default: the sources' total size).
        train_transform, val_transform: optional pipelines for every source.

    Validation and test run on every source separately (one loader each, named by
    :attr:`eval_names`), so metrics are reported per dataset and over all of them.
    """

    def __init__(
        self,
        sources: Mapping[str, SegDataModule],
        labels: LabelSpec,
        class_names: Sequence[str],
        weights: Mapping[str, float] | None = None,
        class_maps: Mapping[str, Mapping[str, str | None]] | None = None,
        samples_per_epoch: int | None = None,
        train_transform: Callable | None = None,
        val_transform: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            train=None,
            val=None,
            labels=labels,
            class_names=class_names,
            train_transform=train_transform,
            val_transform=val_transform,
            **kwargs,
        )
        if not sources:
            raise ValueError("data.sources is empty: a mix needs at least one dataset")
        self.sources = dict(sources)
        unknown = sorted(set(weights or {}) - set(self.sources))
        unknown += sorted(set(class_maps or {}) - set(self.sources))
        if unknown:
            raise ValueError(f"weights/class_maps name unknown sources {unknown}")
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in self.sources}
        for source in self.sources.values():  # data.download / data.mirror apply to every source
            source.download = source.download or self.download
            source.mirror = source.mirror or self.mirror
        self.samples_per_epoch = samples_per_epoch
        self.luts = {}
        for name, source in self.sources.items():
            if source.class_names is None:
                raise ValueError(f"source {name!r} has no class_names to map from")
            self.luts[name] = label_lut(
                source.class_names,
                self.class_names or [],
                (class_maps or {}).get(name),
                source.ignore_index,
                labels.ignore_index,
            )
            mapped = {int(i) for i in self.luts[name]} - {labels.ignore_index}
            log.info("mix: %s contributes %d of %d classes", name, len(mapped), len(class_names))

    @property
    def eval_names(self) -> list[str]:
        return list(self.sources)

    def has_split(self, split: str) -> bool:
        return all(source.has_split(split) for source in self.sources.values())

    def _source_dataset(self, name: str, split: str) -> RemappedDataset:
        source = self.sources[name]
        mine = self.transforms[split]
        factory = source.factories[split]
        if factory is None:
            raise ValueError(f"source {name!r} has no {split!r} split")
        dataset = factory(
            transform=mine if mine is not None else source.transforms[split],
            keep_original_mask=split != "train",
        )
        return RemappedDataset(dataset, self.luts[name], name, self.labels.dtype)

    def build(self, split: str) -> Dataset:
        if split == "train":
            return MixedDataset([self._source_dataset(n, "train") for n in self.sources])
        return _EvalSets({n: self._source_dataset(n, split) for n in self.sources})

    def fetch(self) -> bool:
        return any([source.fetch() for source in self.sources.values()])

    def prepare_data(self) -> None:
        for source in self.sources.values():
            source.prepare_data()

    def _train_sampler(self, dataset: Dataset, world_size: int, rank: int) -> EpochSampler:
        assert isinstance(dataset, MixedDataset)
        return WeightedMixSampler(
            [len(s) for s in dataset.sources],
            [self.weights[s.name] for s in dataset.sources],
            self.samples_per_epoch or len(dataset),
            self.seed,
            world_size,
            rank,
        )

    def _eval_loaders(
        self, dataset: Dataset, world_size: int, rank: int, common: dict[str, Any]
    ) -> list[DataLoader]:
        assert isinstance(dataset, _EvalSets)
        return [
            DataLoader(d, sampler=ShardSampler(len(d), world_size, rank), **common)
            for d in dataset.sets.values()
        ]


class _EvalSets(Dataset):
    """The per-source evaluation datasets of a mix (served as one loader each)."""

    def __init__(self, sets: Mapping[str, RemappedDataset]) -> None:
        self.sets = dict(sets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.sets.values())

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise TypeError("evaluate a mix through its per-source loaders")
