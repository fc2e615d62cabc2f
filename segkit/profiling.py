"""What a model costs: parameters, FLOPs, training-step and inference time, peak memory.

FLOPs are PyTorch's own count (:class:`torch.utils.flop_counter.FlopCounterMode`), which counts
a multiply-add as 2 FLOPs; papers' "GFLOPs" are usually multiply-adds, so about half of ours.

Peak memory: on CUDA, the allocator's peak during the measurement; on CPU, the process's peak
resident set during the measurement (Linux: the high-water mark is reset first through
``/proc/self/clear_refs``; elsewhere it is the peak since the process started). The CPU figure
includes the interpreter, the libraries and the model itself.
"""

from __future__ import annotations

import copy
import re
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Profile", "count_flops", "count_parameters", "profile_model"]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside auxiliary heads) of a segmentor."""
    total = sum(p.numel() for p in model.parameters())
    aux = getattr(model, "auxiliary", None)
    return total, total - (sum(p.numel() for p in aux.parameters()) if aux is not None else 0)


def count_flops(model: nn.Module, size: tuple[int, int]) -> int:
    """FLOPs of one eval-mode forward pass on a ``(1, 3, H, W)`` image (auxiliary heads off).

    Runs where ``model`` lives; on the meta device (as :func:`profile_model` does) it costs
    nothing. Autograd stays on: PyTorch's module tracker hooks tensors that require gradients,
    and a parameter passed straight into a submodule (K-Net's kernels) has no graph under
    ``no_grad``. Open-vocabulary models: encoding the class names (once per vocabulary, then
    cached) is not counted, only the image's path.
    """
    from segkit.models.openvocab import CLIPTextEncoder

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    images = torch.zeros(1, 3, *size, device=device)
    # Text towers: a first, uncounted pass fills a memo of each class list's embeddings, which
    # the counted pass reads (the towers' own cache is bypassed when they are trainable).
    encoders = [m for m in model.modules() if isinstance(m, CLIPTextEncoder)]
    memo: dict[tuple[int, tuple[str, ...]], torch.Tensor] = {}

    def memoized(encoder: CLIPTextEncoder):
        original = encoder.encode

        def encode(names):
            key = (id(encoder), tuple(names))
            if key not in memo:
                memo[key] = original(names).detach()
            return memo[key]

        return encode

    for encoder in encoders:
        encoder.encode = memoized(encoder)  # an instance attribute shadows the method
    try:
        if encoders:
            model(images)
        with FlopCounterMode(display=False) as counter:
            model(images)
    finally:
        model.train(was_training)
        for encoder in encoders:
            del encoder.encode
    return int(counter.get_total_flops())


@dataclass
class Profile:
    """One model's figures. Times are medians in seconds; memory in MiB; ``gflops`` of one
    forward pass at ``infer_size`` (``size`` when inference was not timed)."""

    parameters: int
    parameters_without_aux: int
    gflops: float
    train_step_s: float | None
    inference_s: float | None
    peak_memory_mib: float | None
    device: str
    size: tuple[int, int]
    batch_size: int
    infer_size: tuple[int, int] | None = None

    @property
    def train_images_per_s(self) -> float | None:
        """Training throughput of the timed step (one process): images per second."""
        return None if self.train_step_s is None else self.batch_size / self.train_step_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_time(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile_model(
    model: nn.Module,
    size: tuple[int, int] = (512, 512),
    batch_size: int = 2,
    steps: int = 3,
    warmup: int = 1,
    num_classes: int | None = None,
    ignore_index: int = 255,
    precision: str = "fp32",
    train: bool = True,
    infer: bool = True,
    infer_size: tuple[int, int] | None = None,
) -> Profile:
    """Measure ``model`` (a :class:`~segkit.models.Segmentor`) where it lives.

    The training step is forward + losses + backward + an SGD step on random images and labels
    (``batch_size`` x ``size``); inference is ``model.inference`` on one image (the model's
    ``test_cfg``: whole or sliding window, scales, flip). ``precision``: ``fp32`` or ``bf16`` /
    ``fp16`` autocast. ``infer_size``: ``(H, W)`` of the inference image and of the FLOP count
    (default ``size``).
    """
    device = next(model.parameters()).device
    infer_size = tuple(infer_size or size)
    total, no_aux = count_parameters(model)
    with torch.device("meta"):
        meta_model = copy.deepcopy(model).to("meta")
    gflops = count_flops(meta_model, infer_size) / 1e9
    del meta_model
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    classes = num_classes or getattr(model.heads["seg"], "num_classes", 2)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    _reset_peak_memory(device)
    train_s = infer_s = None
    if train:
        images = torch.randint(0, 256, (batch_size, 3, *size), device=device).float()
        batch: Mapping[str, Any] = {
            "mask": torch.randint(0, classes, (batch_size, *size), device=device)
        }
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
        model.train()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                losses = model.loss(model(images), batch)
            sum(losses.values()).backward()
            optimizer.step()

        train_s = _median_time(step, steps, warmup, device)
    if infer:
        model.eval()
        image = torch.randint(0, 256, (1, 3, *infer_size), device=device).float()

        def forward() -> None:
            with torch.no_grad(), autocast():
                model.inference(image)

        infer_s = _median_time(forward, steps, warmup, device)
    return Profile(
        total,
        no_aux,
        gflops,
        train_s,
        infer_s,
        _peak_memory_mib(device),
        str(device),
        tuple(size),
        batch_size,
        infer_size if infer else None,
    )


def _reset_peak_memory(device: torch.device) -> None:
    """Start a peak-memory measurement (see the module docstring for what CPU figures mean)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux >= 4.0: "5" resets the process's resident-set high-water mark (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the figure is the peak since the process started


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            match = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
