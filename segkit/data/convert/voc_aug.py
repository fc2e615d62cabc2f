"""Pascal VOC 2012 + SBD ("VOC aug"): the SBD class masks as PNGs and the aug split lists.

Raw input (``src`` holding ``VOCtrainval_11-May-2012.tar`` and SBD's ``benchmark.tgz``, untarred)::

    src/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass}/...
    src/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    src/benchmark_RELEASE/dataset/cls/<name>.mat        GTcls.Segmentation: class ids 0..20
    src/benchmark_RELEASE/dataset/{train,val}.txt

Output (``dst``: the VOC2012 root the data config reads; may be ``src/VOCdevkit/VOC2012``)::

    dst/SegmentationClassAug/<name>.png          8-bit grey, values as in the .mat (0..20, 255)
    dst/ImageSets/Segmentation/trainaug.txt      VOC train + SBD train/val, minus VOC val
    dst/ImageSets/Segmentation/aug.txt           SBD train/val, minus VOC train and val
    dst/{JPEGImages,SegmentationClass} -> the devkit's, and its split lists copied, when dst is
        not the devkit's VOC2012 folder

With the full data ``trainaug.txt`` lists 10,582 images, as in MMSegmentation. The lists are
sorted (MMSegmentation writes them in set order).
"""

from __future__ import annotations

import logging
from pathlib import Path

from segkit.data.convert.outputs import link_dir, link_or_copy, write_list, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs

__all__ = ["convert_voc_aug"]

log = logging.getLogger("segkit.data.convert")

TRAINAUG_SIZE = 10582


def convert_voc_aug(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    devkit: str | Path | None = None,
    sbd: str | Path | None = None,
) -> ConversionReport:
    """Convert SBD's ``cls/*.mat`` to ``SegmentationClassAug/*.png`` and write the aug lists.

    Args:
        src: folder holding ``VOCdevkit/`` and ``benchmark_RELEASE/``.
        dst: the VOC2012 root to write to.
        workers: processes converting .mat files.
        devkit: the VOC2012 folder, if not under ``src``.
        sbd: SBD's ``benchmark_RELEASE`` folder, if not under ``src``.
    """
    src, dst = Path(src), Path(dst)
    voc = Path(devkit) if devkit else _first_dir(src, "VOCdevkit/VOC2012", "VOC2012", ".")
    if voc is None or not (voc / "ImageSets" / "Segmentation").is_dir():
        raise FileNotFoundError(
            f"no VOC2012 folder under {src}: untar VOCtrainval_11-May-2012.tar there (or pass devkit=)"
        )
    sbd_root = Path(sbd) if sbd else _first_dir(src, "benchmark_RELEASE", "benchmark", ".")
    if sbd_root is None or not (sbd_root / "dataset" / "cls").is_dir():
        raise FileNotFoundError(
            f"no benchmark_RELEASE/dataset/cls under {src}: untar SBD's benchmark.tgz there "
            "(or pass sbd=)"
        )
    cls_dir = sbd_root / "dataset" / "cls"
    _loadmat()  # fail before starting, not in every worker
    out_dir = dst / "SegmentationClassAug"
    jobs = [
        Job(m.name, _convert_one, (m, out_dir / f"{m.stem}.png"), (out_dir / f"{m.stem}.png",))
        for m in sorted(cls_dir.glob("*.mat"))
    ]
    report = run_jobs("voc_aug", jobs, dst, workers=workers)

    sets = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = _read_list(sets / "train.txt"), _read_list(sets / "val.txt")
    sbd_all = _read_list(sbd_root / "dataset" / "train.txt") + _read_list(
        sbd_root / "dataset" / "val.txt"
    )
    trainaug = sorted(set(voc_train + sbd_all) - set(voc_val))
    aug = sorted(set(sbd_all) - set(voc_train + voc_val))
    out_sets = dst / "ImageSets" / "Segmentation"
    if out_sets.resolve() != sets.resolve():
        for name in ("train.txt", "val.txt", "trainval.txt"):
            if (sets / name).is_file():
                link_or_copy(sets / name, out_sets / name)
    write_list(out_sets / "trainaug.txt", trainaug)
    write_list(out_sets / "aug.txt", aug)
    if len(trainaug) != TRAINAUG_SIZE:
        log.warning(
            "trainaug.txt lists %d images; the full VOC 2012 + SBD give %d",
            len(trainaug),
            TRAINAUG_SIZE,
        )
    for folder in ("JPEGImages", "SegmentationClass"):
        if (voc / folder).is_dir():
            link_dir(voc / folder, dst / folder)
    return report


def _convert_one(mat_path: Path, out: Path) -> list[Path]:
    import numpy as np

    mask = _loadmat()(mat_path)["GTcls"]["Segmentation"][0, 0].astype(np.uint8)
    return [write_png(out, mask)]


def _loadmat():
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("reading .mat files needs scipy: pip install scipy") from err
    return loadmat


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _first_dir(root: Path, *candidates: str) -> Path | None:
    for candidate in candidates:
        if (root / candidate).is_dir():
            return root / candidate
    return None
