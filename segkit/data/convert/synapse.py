"""Synapse multi-organ CT: volumes to 2D slices with TransUNet's 9-class labels, as MMSegmentation.

Raw input (``src``: the Abdomen ``RawData/Training`` folder plus TransUNet's case lists)::

    src/img/img<nnnn>.nii.gz        CT volumes, Hounsfield units
    src/label/label<nnnn>.nii.gz    13 organ labels
    src/{train,val}.txt             one case per line, ``img<nnnn>...`` (characters 3..6 = case)

Output (``dst``)::

    dst/img_dir/{train,val}/case<nnnn>_slice<zzz>.jpg    RGB JPEG (PIL quality 75), grey values
    dst/ann_dir/{train,val}/case<nnnn>_slice<zzz>.png    8-bit grey, values 0..8

Images: intensities clipped to [-125, 275] HU and scaled to 0..255 (truncated), one slice per
index of the volume's third axis, each slice flipped along its second axis.

Label values (TransUNet): 0 background (and the unused organs), 1 aorta, 2 gallbladder,
3 left kidney, 4 right kidney, 5 liver, 6 pancreas, 7 spleen, 8 stomach.

Needs ``nibabel`` (``pip install nibabel``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.data.convert.outputs import write_pil, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs

__all__ = ["ORGAN_MAP", "convert_synapse"]

# Synapse label value: TransUNet class.
ORGAN_MAP = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}


def convert_synapse(src: str | Path, dst: str | Path, *, workers: int = 2) -> ConversionReport:
    """Slice the train and val cases into JPEG images and PNG label maps.

    Args:
        src: folder holding ``img/``, ``label/``, ``train.txt`` and ``val.txt``.
        dst: dataset root to write to.
        workers: processes slicing volumes (each holds one volume, a few hundred MB).
    """
    nib = _nibabel()
    src, dst = Path(src), Path(dst)
    for folder in ("img", "label"):
        if not (src / folder).is_dir():
            raise FileNotFoundError(
                f"{src / folder} not found: expected Synapse's {folder}/ folder"
            )
    jobs = []
    for split in ("train", "val"):
        listing = src / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing} not found: expected the {split} case list")
        cases = [line.strip()[3:7] for line in listing.read_text().splitlines() if line.strip()]
        for case in cases:
            image = src / "img" / f"img{case}.nii.gz"
            label = src / "label" / f"label{case}.nii.gz"
            depth = nib.load(image).shape[2]  # header only
            stems = [f"case{case.zfill(4)}_slice{z:03d}" for z in range(depth)]
            outputs = tuple(dst / "img_dir" / split / f"{s}.jpg" for s in stems) + tuple(
                dst / "ann_dir" / split / f"{s}.png" for s in stems
            )
            jobs.append(Job(image.name, _slice_case, (image, label, outputs), outputs))
    return run_jobs("synapse", jobs, dst, workers=workers)


def _slice_case(image_path: Path, label_path: Path, outputs: tuple[Path, ...]) -> list[Path]:
    from PIL import Image

    nib = _nibabel()
    volume = np.clip(nib.load(image_path).get_fdata(), -125, 275)
    volume = (volume + 125) / 400 * 255
    volume = np.flip(np.transpose(volume, (2, 0, 1)), 2)
    raw = np.flip(np.transpose(nib.load(label_path).get_fdata(), (2, 0, 1)), 2)
    labels = np.zeros(raw.shape, np.uint8)
    for value, organ in ORGAN_MAP.items():
        labels[raw == value] = organ
    depth = volume.shape[0]
    if len(outputs) != 2 * depth or labels.shape != volume.shape:
        raise ValueError(
            f"{image_path} and {label_path} disagree in shape ({volume.shape}, {labels.shape})"
        )
    written = []
    for z in range(depth):
        # Float slices go through PIL's float mode, which truncates to 0..255, as MMSegmentation.
        image = Image.fromarray(np.ascontiguousarray(volume[z])).convert("RGB")
        written.append(write_pil(outputs[z], image, "JPEG"))
    for z in range(depth):
        written.append(write_png(outputs[depth + z], labels[z]))
    return written


def _nibabel():
    try:
        import nibabel
    except ImportError as err:
        raise ImportError(
            "reading Synapse's NIfTI volumes needs nibabel: pip install nibabel"
        ) from err
    return nibabel
