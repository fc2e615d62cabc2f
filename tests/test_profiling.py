"""segkit-bench and segkit.profiling: counts that mean something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hydra.utils import instantiate
from torch import nn

from segkit.profiling import count_flops, profile_model


def test_flop_count_is_exact_for_a_convolution() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    # 2 FLOPs per multiply-add: H * W * C_out * C_in * k * k
    assert count_flops(conv, (16, 20)) == 2 * 16 * 20 * 8 * 3 * 9


def test_profile_of_a_segmentor(compose_cfg) -> None:
    cfg = compose_cfg(["model=segformer", "data=ade20k", "data.root=/none"])
    model = instantiate(cfg.model, _convert_="partial")
    small = profile_model(model, size=(64, 64), batch_size=1, steps=1, warmup=0, infer=False)
    assert small.parameters == sum(p.numel() for p in model.parameters()) == 3_753_718
    assert small.train_step_s > 0 and small.inference_s is None
    large = profile_model(model, size=(128, 128), train=False, steps=1, warmup=0)
    assert 3.5 < large.gflops / small.gflops < 4.5  # FLOPs grow with the pixel count
    assert large.inference_s > 0


def test_bench_command_prints_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "segkit.cli.bench",
            "model=segformer",
            "bench.size=[64,64]",
            "bench.steps=1",
            "bench.warmup=0",
            "bench.batch_size=1",
            f"bench.output={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "GFLOPs" in result.stdout and "3,753,718" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["model"] == "segformer" and figures["train_step_s"] > 0
    assert not any(tmp_path.glob("outputs"))  # a measurement leaves no run folder behind


class _Conv(nn.Module):
    """The smallest model profile_model times: forward and inference are one convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, images):
        return self.conv(images)

    def inference(self, images):
        return self.conv(images)


def test_inference_size_and_peak_memory_of_the_measurement_only() -> None:
    import resource

    import torch

    model = _Conv()
    big = torch.ones(160_000_000)  # 610 MiB resident, then freed before the measurement
    big.add_(1)
    del big
    lifetime_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    profile = profile_model(
        model, size=(8, 8), infer_size=(16, 32), num_classes=4, train=False, steps=1, warmup=0
    )
    assert profile.infer_size == (16, 32) and profile.inference_s > 0
    assert profile.gflops * 1e9 == 2 * 16 * 32 * 4 * 3  # counted at infer_size (bias: not counted)
    if Path("/proc/self/clear_refs").exists():  # Linux: the high-water mark is reset first
        assert profile.peak_memory_mib < lifetime_peak - 400
