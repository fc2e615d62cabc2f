"""KITTI depth (Eigen split): image/depth pairs listed in a split file, and the KITTI benchmark crop.

The layout is KITTI's own: the raw recordings (``<date>/<drive>/image_02/data/*.png``, from the
KITTI raw data page) and the annotated depth maps of the KITTI depth benchmark
(``data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_02/*.png``: 16-bit PNGs,
metres = value / 256, 0 = no measurement; sparse: projected LiDAR points). Which frames make
up the Eigen split is not derivable from the files: it is given by split files of lines
``<image path> <depth path> [<focal> ...]`` (raw-relative image, drive-relative depth), as
published by BTS (``train_test_inputs/eigen_train_files_with_gt.txt`` and
``eigen_test_files_with_gt.txt`` in github.com/cleinc/bts; AdaBins ships the same lists as
``train_test_inputs/kitti_eigen_{train,test}_files_with_gt.txt``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np

from segkit.data.datasets.folder import DatasetNotFoundError, SegmentationFolder
from segkit.data.labels import LabelSpec

__all__ = ["KBCrop", "KittiDepth"]

log = logging.getLogger(__name__)


class KittiDepth(SegmentationFolder):
    """Image/depth pairs listed in a split file (KITTI Eigen split); no semantic labels.

    A list-driven :class:`SegmentationFolder`: samples read, check sizes and transform exactly as
    there (``sample["depth"]`` ``(H, W)`` float32 metres, 0 = no measurement; geometric transforms
    move depth like a mask), only the pairs come from the split file.

    Args:
        root: dataset root.
        split_file: file (under ``root`` unless absolute) of lines ``<image> <depth> [...]``:
            the image path relative to ``root/img_dir``, the depth path relative to one of
            ``depth_dirs``; further columns (BTS's focal length) are ignored. Lines whose depth is
            ``None`` (frames without annotated depth; 45 of the 697 Eigen test frames) are skipped:
            there is nothing to evaluate them against.
        img_dir: folder under ``root`` holding the raw drives (``2011_09_26/...``).
        depth_dirs: folders under ``root`` searched in order for each depth path
            (``data_depth_annotated``'s ``train`` and ``val``, as it unpacks: BTS and AdaBins move
            both into one folder instead; then give that one).
        depth_scale: stored integers per metre (KITTI: 256).
        labels: unused (no label maps); accepted so data configs can pass theirs.
        transform, keep_original_mask, how_to_get: as :class:`SegmentationFolder`.
        strict: raise when listed files are missing (the default); ``False`` drops those pairs
            and lists the missing files in :attr:`missing`.
    """

    def __init__(
        self,
        root: str | Path,
        split_file: str,
        img_dir: str = ".",
        depth_dirs: Sequence[str] = ("data_depth_annotated/train", "data_depth_annotated/val"),
        depth_scale: float = 256.0,
        labels: LabelSpec | None = None,
        transform: Callable[..., dict[str, Any]] | None = None,
        keep_original_mask: bool = False,
        how_to_get: str = "",
        strict: bool = True,
    ) -> None:
        self.root = Path(root).expanduser()
        self.labels = labels
        self.transform = transform
        self.keep_original_mask = keep_original_mask
        self.depth_scale = depth_scale
        self.masks = None
        self.orphans: list[Path] = []
        self.missing: list[Path] = []
        hint = f" {how_to_get}" if how_to_get else ""
        split_path = Path(split_file) if Path(split_file).is_absolute() else self.root / split_file
        if not split_path.is_file():
            raise DatasetNotFoundError(f"split file not found: {split_path}.{hint}")
        img_root = self.root / img_dir
        roots = [self.root / d for d in depth_dirs]
        self.images: list[Path] = []
        self.depths: list[Path] = []
        self.skipped = 0  # listed frames without annotated depth
        for number, line in enumerate(split_path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{split_path}:{number}: expected '<image> <depth> ...': {line!r}")
            if fields[1] == "None":
                self.skipped += 1
                continue
            image = img_root / fields[0]
            depth = next((r / fields[1] for r in roots if (r / fields[1]).is_file()), None)
            if image.is_file() and depth is not None:
                self.images.append(image)
                self.depths.append(depth)
                continue
            absent = [image] if not image.is_file() else []
            absent += [] if depth is not None else [roots[0] / fields[1]]
            if strict:
                where = "" if depth is not None else f" (searched {', '.join(map(str, roots))})"
                raise DatasetNotFoundError(
                    f"{split_path}:{number}: {absent[0]} is missing{where}.{hint}"
                )
            self.missing.extend(absent)
        if not self.images:
            raise DatasetNotFoundError(f"no image/depth pairs listed in {split_path}.{hint}")
        if self.skipped:
            log.info("%s: %d frames without annotated depth skipped", split_path, self.skipped)
        if hasattr(transform, "add_targets"):
            transform.add_targets({"depth": "mask"})  # albumentations: moved like a mask


class KBCrop(A.DualTransform):
    """The KITTI benchmark crop (BTS's and AdaBins' ``do_kb_crop``): the bottom ``height`` rows
    and the centred ``width`` columns (left margin ``(W - width) // 2``), the size of the KITTI
    depth benchmark's images, which removes the top rows the LiDAR never reaches. Applied to the
    image and, like a mask, to the depth map. Raises on inputs smaller than the crop.
    """

    def __init__(self, height: int = 352, width: int = 1216, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.height, self.width = height, width

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        h, w = params["shape"][:2]
        if h < self.height or w < self.width:
            raise ValueError(f"KBCrop({self.height}, {self.width}) on a smaller {h}x{w} input")
        return {"top": h - self.height, "left": (w - self.width) // 2}

    def apply(self, img: np.ndarray, top: int, left: int, **params: Any) -> np.ndarray:
        return np.ascontiguousarray(img[top : top + self.height, left : left + self.width])

    def apply_to_mask(self, mask: np.ndarray, top: int, left: int, **params: Any) -> np.ndarray:
        return self.apply(mask, top, left)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width")
