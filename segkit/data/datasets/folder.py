"""A segmentation dataset read from an image folder and a label folder, driven by config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from segkit.data.io import read_depth, read_image, read_mask
from segkit.data.labels import LabelSpec

__all__ = ["DatasetNotFoundError", "SegmentationFolder"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's folder is missing or holds no samples."""


class SegmentationFolder(Dataset):
    """Pairs ``root/img_dir/**/<stem><img_suffix>`` with ``root/ann_dir/**/<stem><ann_suffix>``.

    This one class reads ADE20K, Cityscapes, Pascal VOC and custom datasets: only the folders,
    suffixes, an optional split file and the :class:`LabelSpec` differ, and they live in YAML.

    Args:
        root: dataset root.
        img_dir, ann_dir: folders under ``root`` (searched recursively, as Cityscapes nests cities).
        img_suffix, ann_suffix: file-name endings that pair an image with its label map
            (Cityscapes: ``_leftImg8bit.png`` / ``_gtFine_labelTrainIds.png``).
        labels: the label specification; raw values are mapped and checked per sample.
        split_file: optional file under ``root`` listing sample stems (Pascal VOC's ImageSets).
        transform: an albumentations pipeline.
        keep_original_mask: evaluation mode: the transform changes the image only, the label
            stays at its original size (metrics are computed there, as in MMSegmentation).
        how_to_get: appended to the error when the data is missing (download instructions).
        depth_dir, depth_suffix, depth_scale: optional depth maps paired the same way (16-bit
            PNGs holding ``metres * depth_scale``; NYU Depth v2: millimetres, 1000), returned as
            ``sample["depth"]`` ``(H, W)`` float32 metres, 0 where unmeasured. Geometric transforms
            move them with the image (nearest); photometric ones leave them alone.
        strict: raise when label or depth files are missing (the default). ``False`` (used by
            ``segkit-data check``) drops those samples and lists them in :attr:`missing`, and
            lists label files with no image in :attr:`orphans`.
    """

    def __init__(
        self,
        root: str | Path,
        img_dir: str,
        ann_dir: str | None,
        labels: LabelSpec,
        img_suffix: str = ".jpg",
        ann_suffix: str = ".png",
        split_file: str | None = None,
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        how_to_get: str = "",
        depth_dir: str | None = None,
        depth_suffix: str = ".png",
        depth_scale: float = 1000.0,
        strict: bool = True,
    ) -> None:
        self.root = Path(root).expanduser()
        self.labels = labels
        self.transform = transform
        self.keep_original_mask = keep_original_mask
        img_root = self.root / img_dir
        hint = f" {how_to_get}" if how_to_get else ""
        if not img_root.is_dir():
            raise DatasetNotFoundError(f"dataset folder not found: {img_root}.{hint}")
        if split_file is not None:
            split_path = self.root / split_file
            if not split_path.is_file():
                raise DatasetNotFoundError(f"split file not found: {split_path}.{hint}")
            stems = [line.strip() for line in split_path.read_text().splitlines() if line.strip()]
        else:
            n = len(img_suffix)
            stems = sorted(
                str(p.relative_to(img_root))[:-n] for p in img_root.rglob(f"*{img_suffix}")
            )
        if not stems:
            raise DatasetNotFoundError(f"no '*{img_suffix}' images under {img_root}.{hint}")
        self.images = [img_root / f"{s}{img_suffix}" for s in stems]
        self.masks = (
            [self.root / ann_dir / f"{s}{ann_suffix}" for s in stems]
            if ann_dir is not None
            else None
        )
        self.depths = (
            [self.root / depth_dir / f"{s}{depth_suffix}" for s in stems]
            if depth_dir is not None
            else None
        )
        self.depth_scale = depth_scale
        self.missing: list[Path] = []
        self.orphans: list[Path] = []
        if not strict:
            self._drop_incomplete(ann_dir if split_file is None else None, ann_suffix)
        for kind, paths in (("label maps", self.masks), ("depth maps", self.depths)):
            missing = [str(m) for m in paths or () if not m.is_file()]
            if missing:
                raise DatasetNotFoundError(
                    f"{len(missing)} of {len(stems)} {kind} are missing, e.g. {missing[0]}.{hint}"
                )
        if self.depths is not None and hasattr(transform, "add_targets"):
            transform.add_targets({"depth": "mask"})  # albumentations: moved like a mask

    def _drop_incomplete(self, ann_dir: str | None, ann_suffix: str) -> None:
        keep = [
            i
            for i in range(len(self.images))
            if all(paths[i].is_file() for paths in (self.masks, self.depths) if paths is not None)
        ]
        kept = set(keep)
        for paths in (self.masks, self.depths):
            for i, path in enumerate(paths or ()):
                if i not in kept and not path.is_file():
                    self.missing.append(path)
        self.images = [self.images[i] for i in keep]
        self.masks = [self.masks[i] for i in keep] if self.masks is not None else None
        self.depths = [self.depths[i] for i in keep] if self.depths is not None else None
        if ann_dir is not None and (self.root / ann_dir).is_dir():
            paired = set(self.masks or ())
            self.orphans = sorted(
                p for p in (self.root / ann_dir).rglob(f"*{ann_suffix}") if p not in paired
            )

    def __len__(self) -> int:
        return len(self.images)

    def load_mask(self, index: int) -> np.ndarray:
        """The mapped, checked label map of sample ``index`` (no transform)."""
        assert self.masks is not None
        path = self.masks[index]
        return self.labels.apply(read_mask(path, rgb=self.labels.rgb), source=str(path))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``key``, or ``(index, seed)``: the augmentation is then drawn from ``seed``
        (see :mod:`segkit.data.sampling`)."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        image = read_image(self.images[index])
        targets: dict[str, np.ndarray] = {}
        if self.masks is not None:
            targets["mask"] = self.load_mask(index)
        if self.depths is not None:
            targets["depth"] = read_depth(self.depths[index], self.depth_scale)
        for name, target in targets.items():
            if target.shape[:2] != image.shape[:2]:
                source = (self.masks if name == "mask" else self.depths)[index]  # type: ignore[index]
                raise ValueError(
                    f"{source}: {name} size {target.shape[:2]} differs from image size "
                    f"{image.shape[:2]} of {self.images[index]}"
                )
        meta = {"path": str(self.images[index]), "ori_shape": tuple(image.shape[:2])}
        if self.transform is not None:
            if self.keep_original_mask or not targets:
                image = self.transform(image=image)["image"]
            else:
                out = self.transform(image=image, **targets)
                image = out["image"]
                targets = {name: out[name] for name in targets}
        return {"image": image, "meta": meta, **targets}
