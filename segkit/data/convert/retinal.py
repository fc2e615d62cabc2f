"""Retinal vessel datasets DRIVE, STARE, CHASE_DB1 and HRF, converted as MMSegmentation does.

All four read the publisher's archives directly from ``src`` and write into ``dst``::

    dst/images/{training,validation}/<name>.png          RGB images, re-encoded as PNG
    dst/annotations/{training,validation}/<name>.png     8-bit grey: 0 background, 1 vessel

A label pixel is vessel when the blue channel of the annotation (as OpenCV decodes it) is
>= 128: some annotations are not strictly 0/255. The splits follow MMSegmentation: DRIVE's own
training/test parts; for the others, the first files in name order are training.

**DRIVE**: ``src/training.zip`` and ``src/test.zip``::

    training/images/<k>_training.tif  -> images/training/<k>.png
    training/1st_manual/<k>_manual1.gif -> annotations/training/<k>_manual1.png
    test/images/<k>_test.tif          -> images/validation/<k>.png
    test/{1st,2nd}_manual/<k>_manual{1,2}.gif -> annotations/validation/<k>_manual{1,2}.png

The dataset reads ``<k>.png`` with ``<k>_manual1.png``. Recent releases of ``test.zip`` have no
manual annotations; the validation annotations are then missing.

**STARE**: ``src/stare-images.tar``, ``src/labels-ah.tar``, ``src/labels-vk.tar`` (gzipped PPMs)::

    im<k>.ppm.gz -> images/<split>/im<k>.png
    im<k>.ah.ppm.gz, im<k>.vk.ppm.gz -> annotations/<split>/im<k>.ah.png, im<k>.vk.png

First 10 of 20 are training; the dataset reads ``im<k>.png`` with ``im<k>.ah.png``.

**CHASE_DB1**: ``src/CHASEDB1.zip`` (84 files)::

    Image_<k>.jpg -> images/<split>/Image_<k>.png
    Image_<k>_1stHO.png, Image_<k>_2ndHO.png -> annotations/<split>/ (same names)

The first 60 files in name order (20 images) are training; the dataset reads ``_1stHO``.

**HRF**: ``src/{healthy,glaucoma,diabetic_retinopathy}.zip`` (images) and
``src/{...}_manualsegm.zip`` (annotations), 15 files each::

    <k>_<h|g|dr>.jpg -> images/<split>/<k>_<h|g|dr>.png
    <k>_<h|g|dr>.tif -> annotations/<split>/<k>_<h|g|dr>.png

The first 5 of each archive are training.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from segkit.data.convert.outputs import write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import (
    decode_color,
    decode_gif_blue,
    list_members,
    read_member,
    require,
)

__all__ = ["convert_chase_db1", "convert_drive", "convert_hrf", "convert_stare"]

log = logging.getLogger("segkit.data.convert")

HRF_PARTS = ("healthy", "glaucoma", "diabetic_retinopathy")


def convert_drive(src: str | Path, dst: str | Path, *, workers: int = 2) -> ConversionReport:
    """Convert DRIVE's ``training.zip`` (training) and ``test.zip`` (validation).

    Args:
        src: folder holding the two zips.
        dst: dataset root to write to.
        workers: processes converting files.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    parts = (("training.zip", "training", "training"), ("test.zip", "test", "validation"))
    for zip_name, top, split in parts:
        archive = require(src / zip_name, f"DRIVE's {zip_name}")
        for member in list_members(archive):
            path = PurePosixPath(member)
            if len(path.parts) != 3 or path.parts[0] != top:
                continue
            if path.parts[1] == "images":
                out = dst / "images" / split / f"{path.stem.replace(f'_{top}', '')}.png"
                jobs.append(Job(member, _image_one, (archive, member, out), (out,)))
            elif path.parts[1] in ("1st_manual", "2nd_manual"):
                out = dst / "annotations" / split / f"{path.stem}.png"
                jobs.append(Job(member, _label_one, (archive, member, out), (out,)))
    return run_jobs("drive", jobs, dst, workers=workers)


def convert_stare(
    src: str | Path, dst: str | Path, *, workers: int = 2, train_count: int = 10
) -> ConversionReport:
    """Convert STARE's three tar archives; the first ``train_count`` images are training.

    Args:
        src: folder holding ``stare-images.tar``, ``labels-ah.tar``, ``labels-vk.tar``.
        dst: dataset root to write to.
        workers: processes converting files.
        train_count: how many files of each archive, in name order, are training.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for tar_name, is_label in (
        ("stare-images.tar", False),
        ("labels-ah.tar", True),
        ("labels-vk.tar", True),
    ):
        archive = require(src / tar_name, f"STARE's {tar_name}")
        members = {PurePosixPath(m).name.removesuffix(".gz"): m for m in list_members(archive)}
        _check_count(tar_name, len(members), 20)
        jobs += _split_jobs(archive, members, dst, train_count, lambda _n, label=is_label: label)
    return run_jobs("stare", jobs, dst, workers=workers)


def convert_chase_db1(
    src: str | Path, dst: str | Path, *, workers: int = 2, train_count: int = 60
) -> ConversionReport:
    """Convert ``CHASEDB1.zip``; the first ``train_count`` files in name order are training.

    Args:
        src: folder holding ``CHASEDB1.zip``.
        dst: dataset root to write to.
        workers: processes converting files.
        train_count: files (images and annotations together) that are training: 60 = 20 images.
    """
    src, dst = Path(src), Path(dst)
    archive = require(src / "CHASEDB1.zip", "CHASE_DB1's CHASEDB1.zip")
    members = {m: m for m in list_members(archive) if "/" not in m}
    _check_count("CHASEDB1.zip", len(members), 84)
    jobs = _split_jobs(archive, members, dst, train_count, lambda n: not n.endswith(".jpg"))
    return run_jobs("chase_db1", jobs, dst, workers=workers)


def convert_hrf(
    src: str | Path, dst: str | Path, *, workers: int = 2, train_count: int = 5
) -> ConversionReport:
    """Convert HRF's six zips; the first ``train_count`` files of each are training.

    Args:
        src: folder holding ``healthy.zip``, ``healthy_manualsegm.zip``, ``glaucoma.zip``,
            ``glaucoma_manualsegm.zip``, ``diabetic_retinopathy.zip`` and
            ``diabetic_retinopathy_manualsegm.zip``.
        dst: dataset root to write to.
        workers: processes converting files.
        train_count: files of each archive, in name order, that are training.
    """
    src, dst = Path(src), Path(dst)
    jobs = []
    for part in HRF_PARTS:
        for zip_name, is_label in ((f"{part}.zip", False), (f"{part}_manualsegm.zip", True)):
            archive = require(src / zip_name, f"HRF's {zip_name}")
            members = {m: m for m in list_members(archive) if "/" not in m}
            _check_count(zip_name, len(members), 15)
            jobs += _split_jobs(
                archive, members, dst, train_count, lambda _n, label=is_label: label
            )
    return run_jobs("hrf", jobs, dst, workers=workers)


def _split_jobs(
    archive, members: dict[str, str], dst: Path, train_count: int, is_label
) -> list[Job]:
    """Jobs for ``{name: member}``: the first ``train_count`` names (sorted) are training."""
    jobs = []
    for i, name in enumerate(sorted(members)):
        split = "training" if i < train_count else "validation"
        stem = PurePosixPath(name).stem  # one extension off: im0001.ah.ppm -> im0001.ah
        member = members[name]
        if is_label(name):
            out = dst / "annotations" / split / f"{stem}.png"
            jobs.append(Job(f"{archive.name}/{member}", _label_one, (archive, member, out), (out,)))
        else:
            out = dst / "images" / split / f"{stem}.png"
            jobs.append(Job(f"{archive.name}/{member}", _image_one, (archive, member, out), (out,)))
    return jobs


def _image_one(archive: Path, member: str, out: Path) -> Path:
    return write_png(out, decode_color(read_member(archive, member), member))


def _label_one(archive: Path, member: str, out: Path) -> Path:
    data = read_member(archive, member)
    if member.lower().endswith(".gif"):  # OpenCV reads GIFs only through video backends
        blue = decode_gif_blue(data)
    else:
        blue = decode_color(data, member)[..., 0]
    return write_png(out, blue // 128)


def _check_count(name: str, count: int, expected: int) -> None:
    if count != expected:
        log.warning(
            "%s holds %d files; the release has %d (the split counts assume it)",
            name,
            count,
            expected,
        )
