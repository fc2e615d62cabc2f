"""MMSegmentation 1.2.2's side of the benchmark: measures one case, prints one JSON line.

Run it with the MMSegmentation environment's interpreter, not segkit's::

    /work/mmseg-venv/bin/python benchmarks/mmseg_reference.py train_segformer_b0 --repeats 5

Everything goes through MMSegmentation's own configs and APIs (``Config.fromfile``, the model
registry, ``build_optim_wrapper``, ``train_step``/``test_step``, the dataset registry with the
config's pipeline, ``IoUMetric``); the inputs and the timing rule come from ``protocol.py``, which
``bench.py``'s segkit side shares. Cases and their meaning: ``protocol.CASES``.

mmsegmentation 1.2.2 on mmcv-lite needs a shim before ``import mmseg`` (see the README in the
shim's folder, ``$SEGKIT_MMSEG_SHIM``, default ``/work/shared/reference/mmseg``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import protocol
import torch

# mmcv-lite lacks the compiled ops that `import mmseg` reaches for: the shim must be installed
# before any mmcv/mmengine/mmseg import below.
sys.path.insert(0, os.environ.get("SEGKIT_MMSEG_SHIM", "/work/shared/reference/mmseg"))
import mmcv_shim

mmcv_shim.install()

import cv2  # noqa: E402
import mmengine  # noqa: E402
import mmseg  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.datasets import ADE20KDataset  # noqa: E402
from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402
from torch import nn  # noqa: E402

CONFIG_ROOT = Path(mmseg.__file__).parent / ".mim" / "configs"
SEGFORMER_ADE = "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"
DEEPLAB_ADE = "deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py"
SEGFORMER_CITYSCAPES = "segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py"
ADE20K_DATA = "_base_/datasets/ade20k.py"


def load_config(relative: str) -> Config:
    """A config from the package, made runnable in one CPU process without downloads."""
    cfg = Config.fromfile(str(CONFIG_ROOT / relative))
    if "model" in cfg:
        _single_process_cpu(cfg.model)
        cfg.model.pretrained = None
        cfg.model.backbone.init_cfg = None
    return cfg


def _single_process_cpu(node: Any) -> None:
    """SyncBN needs a process group; BN computes the same thing in one process."""
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
        for value in node.values():
            _single_process_cpu(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _single_process_cpu(value)


def build_model(cfg: Config) -> nn.Module:
    """The config's model with MMSegmentation's own random initialisation."""
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _samples(labels: np.ndarray | None, shape: tuple[int, int]) -> list[SegDataSample]:
    """Data samples as ``PackSegInputs`` makes them (shapes, and the label when training)."""
    samples = []
    for i in range(1 if labels is None else len(labels)):
        sample = SegDataSample(metainfo={"img_shape": shape, "ori_shape": shape})
        if labels is not None:
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels[i])[None])
        samples.append(sample)
    return samples


def train_step(relative: str, warmup: int, repeats: int) -> list[float]:
    """Seconds per ``train_step``: data preprocessor, losses (auxiliary head included),
    backward and the optimizer step of the config's ``optim_wrapper``."""
    cfg = load_config(relative)
    model = build_model(cfg).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    images = protocol.image_batch(2, 512, 512)
    data = {
        "inputs": [torch.from_numpy(im) for im in images],
        "data_samples": _samples(protocol.label_batch(2, 512, 512), (512, 512)),
    }
    return protocol.time_calls(lambda: model.train_step(data, optim_wrapper), warmup, repeats)


def predict(relative: str, height: int, width: int, warmup: int, repeats: int) -> list[float]:
    """Seconds per ``test_step`` on one image: data preprocessor, ``predict`` as the config's
    ``test_cfg`` says (whole or slide), logits resized to the original shape, argmax."""
    cfg = load_config(relative)
    model = build_model(cfg).eval()
    image = protocol.image_batch(1, height, width)[0]
    data = {"inputs": [torch.from_numpy(image)], "data_samples": _samples(None, (height, width))}

    # mmengine's ValLoop/TestLoop run every iteration under no_grad.
    @torch.no_grad()
    def step() -> None:
        model.test_step(data)

    return protocol.time_calls(step, warmup, repeats)


def data_pipeline(root: str, warmup: int, repeats: int) -> list[float]:
    """Images per second of one pass over ``root`` through the ADE20K dataset config's
    training pipeline, in this one process."""
    # mmengine's Runner sets this from env_cfg.mp_cfg (default_runtime.py), and segkit sets the
    # same on import: OpenCV's threads would compete with the loader workers.
    cv2.setNumThreads(0)
    # PackSegInputs uses torch ops: with two threads on a busy machine they wait on each other.
    torch.set_num_threads(protocol.LOADER_WORKER_THREADS)
    cfg = load_config(ADE20K_DATA)
    dataset_cfg = ConfigDict(cfg.train_dataloader.dataset)
    dataset_cfg.data_root = root
    dataset = DATASETS.build(dataset_cfg)
    n = len(dataset)

    def one_pass() -> None:
        for i in range(n):
            dataset[i]

    return [n / s for s in protocol.time_calls(one_pass, warmup, repeats)]


def loader(root: str, workers: int, warmup: int, repeats: int) -> list[float]:
    """Images per second of one epoch of the ADE20K config's training DataLoader (its
    pipeline, ``pseudo_collate`` and the model's data preprocessor stacking the batch, which is
    where MMSegmentation makes the batch tensor), ``workers`` persistent worker processes."""
    from mmengine.runner import Runner

    cv2.setNumThreads(0)
    cfg = load_config(ADE20K_DATA)
    loader_cfg = ConfigDict(cfg.train_dataloader)
    loader_cfg.dataset.data_root = root
    loader_cfg.batch_size = protocol.LOADER_BATCH
    loader_cfg.num_workers = workers
    loader_cfg.persistent_workers = True
    loader_cfg.sampler = {"type": "DefaultSampler", "shuffle": True}
    batches = Runner.build_dataloader(loader_cfg, seed=protocol.SEED)
    preprocessor = MODELS.build(
        {"type": "SegDataPreProcessor", "size": (512, 512), "pad_val": 0, "seg_pad_val": 255}
    )
    epoch = [0]

    def one_epoch() -> None:
        batches.sampler.set_epoch(epoch[0])
        epoch[0] += 1
        for batch in batches:
            preprocessor(batch, training=True)

    n = len(batches) * protocol.LOADER_BATCH
    return [n / s for s in protocol.time_calls(one_epoch, warmup, repeats)]


def iou_metric(warmup: int, repeats: int) -> tuple[list[float], float, float]:
    """Seconds for ``IoUMetric.process`` on each pair (batches of one, as validation feeds it)
    plus ``compute_metrics``; also the mIoU as a fraction, full precision and as reported.

    The reported mIoU is a percentage rounded to two decimals; the full-precision value is
    recomputed here from the metric's own accumulated areas, so it can be compared to 1e-6.
    """
    batches = [
        [
            {
                "pred_sem_seg": {"data": torch.from_numpy(p)},
                "gt_sem_seg": {"data": torch.from_numpy(t)},
            }
        ]
        for p, t in protocol.metric_pairs()
    ]
    runs: list[tuple[dict[str, float], list]] = []

    def run() -> None:
        metric = IoUMetric(ignore_index=protocol.IGNORE_INDEX, iou_metrics=["mIoU"])
        metric.dataset_meta = {"classes": ADE20KDataset.METAINFO["classes"]}
        for batch in batches:
            metric.process({}, batch)
        runs.append((metric.compute_metrics(metric.results), metric.results))

    samples = protocol.time_calls(run, warmup, repeats)
    reported, results = runs[-1]
    intersect, union, pred_area, label_area = (sum(r) for r in zip(*results))
    iou = IoUMetric.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])["IoU"]
    return samples, float(np.nanmean(iou)), float(reported["mIoU"]) / 100


VERSIONS = f"mmsegmentation {mmseg.__version__}, mmengine {mmengine.__version__}, torch {torch.__version__}"


def measure(case: str, warmup: int, repeats: int, data: str | None) -> protocol.Result:
    """Run ``case``; see ``protocol.CASES``."""
    runners: dict[str, Callable[[], list[float]]] = {
        "train_segformer_b0": lambda: train_step(SEGFORMER_ADE, warmup, repeats),
        "train_deeplabv3plus_r50": lambda: train_step(DEEPLAB_ADE, warmup, repeats),
        "infer_segformer_b0": lambda: predict(SEGFORMER_ADE, 512, 512, warmup, repeats),
        "infer_deeplabv3plus_r50": lambda: predict(DEEPLAB_ADE, 512, 512, warmup, repeats),
        "slide_segformer_b0_cityscapes": lambda: predict(
            SEGFORMER_CITYSCAPES, 1024, 2048, warmup, repeats
        ),
    }
    return protocol.run_case(
        case,
        runners,
        lambda folder: data_pipeline(folder, warmup, repeats),
        lambda: iou_metric(warmup, repeats),
        data,
        VERSIONS,
        lambda folder, workers: loader(folder, workers, warmup, repeats),
    )


def main() -> None:
    args = protocol.case_parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(protocol.THREADS)
    # mmengine logs through the newest logger instance: make it one that keeps init_weights'
    # per-parameter report and IoUMetric's per-class table (still built, so still timed) off
    # stdout, which carries the JSON result.
    MMLogger.get_instance("mmseg_reference", log_level="WARNING")
    register_all_modules()
    print(measure(args.case, args.warmup, args.repeats, args.data).to_json(), flush=True)


if __name__ == "__main__":
    main()
