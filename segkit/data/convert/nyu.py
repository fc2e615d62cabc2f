"""NYU Depth V2: the BTS-style release regrouped by split, as MMSegmentation, and optionally the
40-class semantic labels of the 1,449 densely labelled frames.

Raw input (``src``: ``nyu.zip``, a folder holding it, or its unzipped ``nyu/`` folder)::

    nyu/nyu_{train,test}.txt         lines ``<scene>/rgb_<n>.jpg <scene>/sync_depth_<n>.png ...``
    nyu/<scene>/rgb_<n>.jpg
    nyu/<scene>/sync_depth_<n>.png   16-bit depth in millimetres

Output (``dst``), files copied unchanged (hard links where possible)::

    dst/images/{train,test}/<scene>_<n>.jpg
    dst/annotations/{train,test}/<scene>_<n>.png

The raw files are left in place (MMSegmentation moves them).

Semantic labels (NYUv2-40), written when ``labeled_mat``, ``class_mapping`` and ``splits`` are
given (all three; a relative path is tried as given, then in the folder of ``src``):

- ``labeled_mat``: the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, read with ``h5py``):
  ``images`` (N, 3, W, H) uint8, ``depths``/``rawDepths`` (N, W, H) metres, ``labels`` (N, W, H)
  0 unlabelled or 1..894, ``sceneTypes`` (references to the scene type strings). h5py sees
  MATLAB's arrays with their axes reversed; each frame is transposed back to (H, W).
- ``class_mapping``: ``classMapping40.mat`` (github.com/ankurhanda/nyuv2-meta-data, Gupta et al.'s
  894 -> 40 mapping; MATLAB v5, read with ``scipy.io.loadmat``): ``mapClass`` (1 x 894, values
  1..40: the class of id k is ``mapClass[k - 1]``) and ``className`` (1 x 40 names, not needed).
  Also read: a plain ``mapping`` vector (1 x 894), and Gupta's ``ClassMapping.mat`` layout
  (``mapNYU894To40``: the 40-class name of each of the 894 ids; ``nyu40class``: the 40 names in
  id order).
- ``splits``: the toolbox's ``splits.mat``: ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based
  frame numbers. Frames in neither list are skipped.

Each labelled frame is named ``<sceneType>_<i>`` with ``i`` its 0-based index in the .mat on five
digits (``bathroom_00045``): the stems of BTS's ``extract_official_train_test_set_from_mat.py``,
hence of the test images of ``nyu.zip``. Written::

    dst/labels40/{train,test}/<stem>.png   uint8: 0 unlabelled, 1..40 (mapClass of the raw id)
    dst/labels40/{train,test}.txt          the stems of the split, in frame order
    dst/images/{train,test}/<stem>.jpg     the .mat's RGB frame as JPEG (OpenCV, quality 95)
    dst/annotations/{train,test}/<stem>.png  depth: uint16 PNG, round(metres * 1000) millimetres

The image and depth of a labelled frame are written only when ``nyu.zip`` has no file of that
stem in that split. With the real data that means: the 654 test frames keep ``nyu.zip``'s image
and depth (BTS extracted them from this same .mat: RGB with a black 7-pixel border, depth from
``rawDepths``), so semantic and depth evaluation read the same files as MMSegmentation's depth
benchmark; the 795 training frames, which are not in ``nyu.zip`` (its training set is the raw
"sync" video frames, named ``<scene>_<nnnn>[a-z]_<n>``, never ``<sceneType>_<i>``), are written
from the .mat (full frame, depth from ``depth_key``: ``depths``, the filled-in maps, by default;
``rawDepths`` for the raw ones with 0 where there was no measurement).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from segkit.data.convert.outputs import link_or_copy, write_bytes, write_list, write_png
from segkit.data.convert.parallel import ConversionReport, Job, run_jobs
from segkit.data.convert.sources import read_member, require

__all__ = ["convert_nyu"]

log = logging.getLogger("segkit.data.convert")

NUM_RAW_CLASSES = 894
NUM_CLASSES = 40
PHASES = {"trainNdxs": "train", "testNdxs": "test"}


def convert_nyu(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 2,
    labeled_mat: str | Path | None = None,
    class_mapping: str | Path | None = None,
    splits: str | Path | None = None,
    depth_key: str = "depths",
) -> ConversionReport:
    """Copy the images and depth maps listed in ``nyu_train.txt`` and ``nyu_test.txt``, and, with
    ``labeled_mat``, ``class_mapping`` and ``splits``, write the 40-class labels of the labelled
    frames (see the module docstring for the layout).

    Args:
        src: ``nyu.zip``, the folder holding it, or the unzipped ``nyu`` folder.
        dst: dataset root to write to.
        workers: processes copying and converting files.
        labeled_mat: ``nyu_depth_v2_labeled.mat`` (needs ``h5py``).
        class_mapping: ``classMapping40.mat`` (894 -> 40 classes).
        splits: the toolbox's ``splits.mat`` (official 795 / 654 split).
        depth_key: the .mat's depth written for labelled frames not in ``nyu.zip``: ``depths``
            (filled in) or ``rawDepths``.
    """
    src, dst = Path(src), Path(dst)
    labelled = {"labeled_mat": labeled_mat, "class_mapping": class_mapping, "splits": splits}
    if any(v is not None for v in labelled.values()):
        missing = [k for k, v in labelled.items() if v is None]
        if missing:
            raise ValueError(
                "the NYUv2-40 labels need labeled_mat, class_mapping and splits; missing: "
                + ", ".join(missing)
            )
        _require_modules()
    archive, root = _locate(src)
    jobs = []
    provided: dict[str, set[str]] = {"train": set(), "test": set()}
    for phase in ("train", "test"):
        listing = f"nyu_{phase}.txt"
        text = (
            read_member(archive, f"nyu/{listing}") if archive else (root / listing).read_bytes()
        ).decode()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 2:
                continue
            for item, folder, marker in (
                (fields[0], "images", "/rgb"),
                (fields[1], "annotations", "/sync_depth"),
            ):
                item = item.strip().strip("/")
                out = dst / folder / phase / item.replace(marker, "")
                provided[phase].add(out.stem)
                if archive:
                    jobs.append(Job(item, _copy_member, (archive, f"nyu/{item}", out), (out,)))
                else:
                    jobs.append(Job(item, link_or_copy, (root / item, out), (out,)))
    if labeled_mat is None:
        return run_jobs("nyu", jobs, dst, workers=workers)

    base = src if src.is_dir() else src.parent
    mat = _resolve(labeled_mat, base, "nyu_depth_v2_labeled.mat")
    lut = _class_lut(_resolve(class_mapping, base, "classMapping40.mat"))
    stems, depth_shape = _frames(mat, depth_key)
    split_lists = _splits(_resolve(splits, base, "the toolbox's splits.mat"), len(stems))
    from_mat = 0
    for phase, indices in split_lists.items():
        for index in indices:
            stem = stems[index]
            label = dst / "labels40" / phase / f"{stem}.png"
            image = depth = None
            if stem not in provided[phase]:
                image = dst / "images" / phase / f"{stem}.jpg"
                depth = dst / "annotations" / phase / f"{stem}.png"
                from_mat += 1
            outputs = tuple(p for p in (label, image, depth) if p is not None)
            args = (mat, index, depth_key, lut, label, image, depth)
            jobs.append(Job(f"{mat.name}:{index + 1}", _convert_frame, args, outputs))
    log.info(
        "nyu: %d labelled frames, %d with image and depth from %s (%s)",
        sum(map(len, split_lists.values())),
        from_mat,
        mat.name,
        "x".join(map(str, depth_shape)),
    )
    try:
        report = run_jobs("nyu", jobs, dst, workers=workers)
    finally:
        _close_mats()
    for phase, indices in split_lists.items():
        write_list(dst / "labels40" / f"{phase}.txt", [stems[i] for i in indices])
    return report


def _locate(src: Path) -> tuple[Path | None, Path | None]:
    """``(zip, None)`` or ``(None, folder with nyu_train.txt)``."""
    if src.is_file():
        return src, None
    for folder in (src, src / "nyu"):
        if (folder / "nyu_train.txt").is_file():
            return None, folder
    if (src / "nyu.zip").is_file():
        return src / "nyu.zip", None
    raise FileNotFoundError(
        f"{src}: expected nyu.zip, or a folder with nyu_train.txt and nyu_test.txt"
    )


def _copy_member(archive: Path, member: str, out: Path) -> Path:
    return write_bytes(out, read_member(archive, member))


# --- NYUv2-40 labels ------------------------------------------------------------------------


def _require_modules() -> None:
    try:
        import h5py  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "reading nyu_depth_v2_labeled.mat (MATLAB v7.3, HDF5) needs h5py: pip install h5py"
        ) from err
    try:
        import scipy.io  # noqa: F401
    except ImportError as err:
        raise ImportError("reading .mat files needs scipy: pip install scipy") from err


def _resolve(path: str | Path, base: Path, what: str) -> Path:
    """``path``; a relative one that does not exist is looked up in ``base`` (the raw folder)."""
    path = Path(path).expanduser()
    if not path.is_absolute() and not path.exists() and (base / path).exists():
        path = base / path
    return require(path, what)


def _class_lut(path: Path) -> np.ndarray:
    """Raw id (0..894) -> NYUv2-40 id (0 unlabelled, 1..40), as a uint8 lookup table."""
    from scipy.io import loadmat

    mat = loadmat(path)
    if "mapClass" in mat or "mapping" in mat:
        ids = np.asarray(mat["mapClass" if "mapClass" in mat else "mapping"]).ravel()
    elif "mapNYU894To40" in mat and "nyu40class" in mat:
        names = [_mat_string(x) for x in np.asarray(mat["nyu40class"]).ravel()]
        ids = np.array([names.index(_mat_string(x)) + 1 for x in mat["mapNYU894To40"].ravel()])
    else:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(
            f"{path}: no 894 -> 40 class mapping (expected mapClass, as in classMapping40.mat); "
            f"variables: {found}"
        )
    if ids.size != NUM_RAW_CLASSES or not np.array_equal(ids, np.round(ids)):
        raise ValueError(f"{path}: expected {NUM_RAW_CLASSES} integer class ids, got {ids.size}")
    if ids.min() < 0 or ids.max() > NUM_CLASSES:
        raise ValueError(f"{path}: class ids must lie in 1..{NUM_CLASSES}")
    lut = np.zeros(NUM_RAW_CLASSES + 1, np.uint8)
    lut[1:] = ids.astype(np.uint8)
    return lut


def _mat_string(item) -> str:
    """A MATLAB string as loadmat returns it inside a cell array (a 1-element array of str)."""
    while isinstance(item, np.ndarray):
        item = item.ravel()[0]
    return str(item).strip()


def _splits(path: Path, frames: int) -> dict[str, list[int]]:
    """``{"train": [0-based frame indices], "test": [...]}`` from ``trainNdxs``/``testNdxs``."""
    from scipy.io import loadmat

    mat = loadmat(path)
    out = {}
    for key, phase in PHASES.items():
        if key not in mat:
            raise ValueError(f"{path}: no {key} (expected the toolbox's splits.mat)")
        numbers = np.asarray(mat[key]).ravel().astype(np.int64)
        if numbers.size and (numbers.min() < 1 or numbers.max() > frames):
            raise ValueError(f"{path}: {key} outside 1..{frames} (1-based frame numbers)")
        out[phase] = sorted({int(n) - 1 for n in numbers})
    both = set(out["train"]) & set(out["test"])
    if both:
        raise ValueError(f"{path}: frames in both splits: {sorted(n + 1 for n in both)[:5]}")
    return out


def _frames(path: Path, depth_key: str) -> tuple[list[str], tuple[int, ...]]:
    """The stems ``<sceneType>_<index:05d>`` of the .mat's frames, and its depth array shape."""
    import h5py

    with h5py.File(path, "r") as f:
        for key in ("images", "labels", depth_key, "sceneTypes"):
            if key not in f:
                raise ValueError(f"{path}: no {key!r} (expected nyu_depth_v2_labeled.mat)")
        images, labels, depths = f["images"], f["labels"], f[depth_key]
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or labels.shape != (n, *images.shape[2:]):
            raise ValueError(
                f"{path}: images {images.shape} and labels {labels.shape} are not (N, 3, W, H) "
                "and (N, W, H)"
            )
        if depths.shape != labels.shape:
            raise ValueError(f"{path}: {depth_key} {depths.shape} differs from {labels.shape}")
        refs = np.asarray(f["sceneTypes"]).ravel()
        if refs.size != n:
            raise ValueError(f"{path}: {refs.size} sceneTypes for {n} frames")
        scenes = ["".join(map(chr, np.asarray(f[ref]).ravel())) for ref in refs]
        return [f"{scene}_{i:05d}" for i, scene in enumerate(scenes)], depths.shape


_MATS: dict[tuple[int, str], object] = {}


def _open_mat(path: Path):
    """The .mat opened once per process (workers open their own: HDF5 handles are not forked)."""
    import h5py

    key = (os.getpid(), str(path))
    if key not in _MATS:
        _MATS[key] = h5py.File(path, "r")
    return _MATS[key]


def _close_mats() -> None:
    for key in [k for k in _MATS if k[0] == os.getpid()]:
        _MATS.pop(key).close()


def _convert_frame(
    mat: Path,
    index: int,
    depth_key: str,
    lut: np.ndarray,
    label_out: Path,
    image_out: Path | None,
    depth_out: Path | None,
) -> list[Path]:
    import cv2

    f = _open_mat(mat)
    raw = np.asarray(f["labels"][index]).T
    if raw.size and int(raw.max()) >= len(lut):
        raise ValueError(f"label id {int(raw.max())} beyond the {NUM_RAW_CLASSES} classes")
    written = [write_png(label_out, lut[raw])]
    if image_out is not None:
        rgb = np.asarray(f["images"][index]).transpose(2, 1, 0)
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise ValueError(f"cannot encode {image_out} as JPEG")
        written.append(write_bytes(image_out, data.tobytes()))
    if depth_out is not None:
        metres = np.nan_to_num(np.asarray(f[depth_key][index], np.float64).T)
        millimetres = np.clip(np.rint(metres * 1000.0), 0, np.iinfo(np.uint16).max)
        written.append(write_png(depth_out, millimetres.astype(np.uint16)))
    return written
