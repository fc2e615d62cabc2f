"""segkit's side of the benchmark: measures one case, prints one JSON line.

Run with segkit's interpreter (``bench.py`` starts it once per case and round, as it starts
``mmseg_reference.py``, so both sides measure in a fresh process)::

    /work/venv/bin/python benchmarks/segkit_cases.py train_segformer_b0 --repeats 5

Everything is built through segkit's own Hydra configs and APIs (``compose`` + ``instantiate``,
``segkit.optim.param_groups``, ``Segmentor``, ``SegDataModule.build``, ``SegMetrics``); the inputs
and the timing rule come from ``protocol.py``, which ``mmseg_reference.py`` shares. Cases and
their meaning: ``protocol.CASES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import protocol
import timm
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import segkit
from segkit.cli._hydra import CONFIG_DIR
from segkit.metrics import SegMetrics
from segkit.models import Segmentor
from segkit.optim import param_groups

# The models' configs interpolate the data config (classes, test resize); data.root is never read
# when only the model is built.
SEGFORMER_ADE = ["model=segformer", "data=ade20k", "data.root=/nonexistent"]
DEEPLAB_ADE = ["model=deeplabv3plus_r50", "data=ade20k", "data.root=/nonexistent", "optim=sgd"]
SEGFORMER_CITYSCAPES_SLIDE = [
    "model=segformer",
    "data=cityscapes",
    "data.root=/nonexistent",
    "model.test_cfg.mode=slide",
    "model.test_cfg.crop_size=[1024,1024]",
    "model.test_cfg.stride=[768,768]",
]


def load_config(overrides: Sequence[str]) -> DictConfig:
    """segkit-train's config with ``overrides``, composed as the CLI composes it."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def build_model(cfg: DictConfig) -> Segmentor:
    """The config's model, randomly initialised (``pretrained: false`` in the model configs)."""
    return instantiate(cfg.model, _convert_="partial")


def build_optimizer(cfg: DictConfig, model: Segmentor) -> torch.optim.Optimizer:
    """The optimizer exactly as ``SegmentationTask.configure_optimizers`` builds it: the optim
    config's factory over the parameter groups its rules make."""
    optim = cfg.optim
    rules = OmegaConf.to_container(optim.param_groups, resolve=True)
    groups = param_groups(model, optim.lr, optim.weight_decay, **rules)
    factory = instantiate(optim.optimizer, _convert_="partial")
    return factory(groups, lr=optim.lr, weight_decay=optim.weight_decay)


def train_step(overrides: Sequence[str], warmup: int, repeats: int) -> list[float]:
    """Seconds per training step: normalisation, forward, every loss (auxiliary heads
    included), backward and the optimizer step, as ``SegmentationTask.training_step`` and
    Lightning's loop run them."""
    cfg = load_config(overrides)
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    images = torch.from_numpy(protocol.image_batch(2, 512, 512))
    batch = {"mask": torch.from_numpy(protocol.label_batch(2, 512, 512))}

    def step() -> None:
        losses = model.loss(model(images.float()), batch)
        loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return protocol.time_calls(step, warmup, repeats)


def predict(overrides: Sequence[str], warmup: int, repeats: int) -> list[float]:
    """Seconds per ``Segmentor.predict`` of one 512x512 uint8 image: the data config's test
    resize, normalisation, whole inference, logits back to the image size, argmax (the work of
    MMSegmentation's ``test_step``)."""
    model = build_model(load_config(overrides)).eval()
    image = torch.from_numpy(protocol.image_batch(1, 512, 512))
    return protocol.time_calls(lambda: model.predict(image), warmup, repeats)


def slide_inference(overrides: Sequence[str], warmup: int, repeats: int) -> list[float]:
    """Seconds per ``Segmentor.inference`` of one 1024x2048 image with the sliding window."""
    model = build_model(load_config(overrides)).eval()
    image = torch.from_numpy(protocol.image_batch(1, 1024, 2048))

    @torch.no_grad()
    def run() -> None:
        model.inference(image.float())

    return protocol.time_calls(run, warmup, repeats)


def data_pipeline(root: str, warmup: int, repeats: int) -> list[float]:
    """Images per second of one pass over ``root`` (ADE20K layout) through the ADE20K data
    config's training dataset and pipeline, in this one process."""
    torch.set_num_threads(protocol.LOADER_WORKER_THREADS)  # as in a DataLoader worker
    cfg = load_config(["data=ade20k", f"data.root={root}"])
    dataset = instantiate(cfg.data, _convert_="partial").build("train")
    n = len(dataset)

    def one_pass() -> None:
        for i in range(n):
            dataset[i]

    return [n / s for s in protocol.time_calls(one_pass, warmup, repeats)]


def loader(root: str, workers: int, warmup: int, repeats: int) -> list[float]:
    """Images per second of one epoch of the ADE20K data config's training DataLoader over
    ``root`` with ``workers`` worker processes (kept alive between epochs)."""
    cfg = load_config(
        [
            "data=ade20k",
            f"data.root={root}",
            f"data.num_workers={workers}",
            f"data.batch_size={protocol.LOADER_BATCH}",
            "+data.label_check_samples=0",
        ]
    )
    datamodule = instantiate(cfg.data, _convert_="partial")
    datamodule.datasets["train"] = datamodule.build("train")  # no validation split here
    batches = datamodule.train_dataloader()
    epoch = [0]

    def one_epoch() -> None:
        batches.sampler.set_epoch(epoch[0])
        epoch[0] += 1
        for _ in batches:
            pass

    n = len(batches) * protocol.LOADER_BATCH
    return [n / s for s in protocol.time_calls(one_epoch, warmup, repeats)]


def iou_metric(warmup: int, repeats: int) -> tuple[list[float], float, float]:
    """Seconds for ``SegMetrics.update`` on each pair (batches of one, as validation feeds it)
    plus ``compute``; also the mIoU, twice: segkit reports it at full precision."""
    pairs = [
        (torch.from_numpy(p)[None], torch.from_numpy(t)[None]) for p, t in protocol.metric_pairs()
    ]
    results: list[float] = []

    def run() -> None:
        metric = SegMetrics(protocol.NUM_CLASSES, protocol.IGNORE_INDEX)
        for pred, target in pairs:
            metric.update(pred, target)
        results.append(float(metric.compute()["mIoU"]))

    return protocol.time_calls(run, warmup, repeats), results[-1], results[-1]


VERSIONS = f"segkit {segkit.__version__}, timm {timm.__version__}, torch {torch.__version__}"


def measure(case: str, warmup: int, repeats: int, data: str | None) -> protocol.Result:
    """Run ``case``; see ``protocol.CASES``."""
    runners: dict[str, Callable[[], list[float]]] = {
        "train_segformer_b0": lambda: train_step(SEGFORMER_ADE, warmup, repeats),
        "train_deeplabv3plus_r50": lambda: train_step(DEEPLAB_ADE, warmup, repeats),
        "infer_segformer_b0": lambda: predict(SEGFORMER_ADE, warmup, repeats),
        "infer_deeplabv3plus_r50": lambda: predict(DEEPLAB_ADE, warmup, repeats),
        "slide_segformer_b0_cityscapes": lambda: slide_inference(
            SEGFORMER_CITYSCAPES_SLIDE, warmup, repeats
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
    print(measure(args.case, args.warmup, args.repeats, args.data).to_json(), flush=True)


if __name__ == "__main__":
    main()
