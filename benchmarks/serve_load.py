"""Load test of ``segkit-serve``: many concurrent clients, with and without dynamic batching.

    /work/venv/bin/python benchmarks/serve_load.py [--ckpt PATH] [--clients 64] [--requests 4]
        [--size 128x128] [--rounds 2] [--modes batched=16,10 unbatched=1,0]

Each mode (``name=max_batch_size,max_wait_ms``) runs the real CLI in a subprocess; ``--clients``
asyncio clients (httpx) then each send ``--requests`` multipart requests of one fixed image, one
after the other, all clients at once. The modes alternate, and swap order from round to round,
so that load drifting on a shared machine falls on each. Any non-200 answer is an error; the
script exits with status 1 if there is one. Printed: latency p50/p90/p99 (ms), throughput
(requests/s) and the mean batch size the server reports, per mode over all rounds.

Without ``--ckpt``, a SegFormer-B0 checkpoint on the shapes classes is written with random
weights (the speed does not depend on what the weights learnt).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


@dataclass
class ModeResult:
    """Pooled figures of one server configuration over all rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0


def make_checkpoint(folder: Path, model: str) -> Path:
    """A random-weight checkpoint of ``conf/model/<model>.yaml`` on the shapes classes."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from segkit.checkpoints.io import save_checkpoint
    from segkit.cli._hydra import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}", "paths.output_dir=unused"])
    config = OmegaConf.to_container(cfg.model, resolve=True)
    torch.manual_seed(0)
    weights = instantiate(config, _convert_="partial").state_dict()
    return save_checkpoint(folder / f"{model}.ckpt", config, weights, source="random weights")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    ckpt: Path, batch: int, wait_ms: float, run_dir: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segkit.cli.serve",
            f"ckpt_path={ckpt}",
            f"port={port}",
            f"serve.max_batch_size={batch}",
            f"serve.max_wait_ms={wait_ms}",
            "log_level=warning",
            f"hydra.run.dir={run_dir}",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"segkit-serve exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit("segkit-serve did not answer /health within 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit("segkit-serve did not stop within 30 s of SIGTERM") from None


async def load(url: str, png: bytes, clients: int, requests: int, result: ModeResult) -> None:
    """``clients`` concurrent clients, each sending ``requests`` requests in sequence."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:

        async def one_client() -> None:
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    response = await client.post(
                        "/predict", files={"file": ("image.png", png, "image/png")}
                    )
                except httpx.HTTPError as err:
                    result.errors.append(f"{type(err).__name__}: {err}")
                    continue
                elapsed = 1000 * (time.perf_counter() - start)
                if response.status_code != 200:
                    result.errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                result.latencies_ms.append(elapsed)
                result.batch_sizes.append(response.json()["timing"]["batch_size"])

        # warm-up outside the timing
        for _ in range(2):
            await client.post("/predict", files={"file": ("image.png", png, "image/png")})
        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        result.seconds += time.perf_counter() - start
        result.requests += clients * requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt", type=Path, help="a segkit checkpoint (default: random SegFormer-B0)"
    )
    parser.add_argument("--model", default="segformer", help="conf/model config without --ckpt")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--size", default="128x128", help="image HEIGHTxWIDTH")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["batched=16,10", "unbatched=1,0"],
        help="NAME=max_batch_size,max_wait_ms",
    )
    args = parser.parse_args()
    modes = {}
    for spec in args.modes:
        name, _, values = spec.partition("=")
        batch, wait = values.split(",")
        modes[name] = (int(batch), float(wait))
    height, width = (int(v) for v in args.size.lower().split("x"))
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    png = buffer.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt or make_checkpoint(Path(tmp), args.model)
        results = {name: ModeResult() for name in modes}
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for name in order:
                batch, wait = modes[name]
                proc, url = start_server(ckpt, batch, wait, Path(tmp) / f"run-{name}-{round_}")
                try:
                    before = len(results[name].latencies_ms)
                    seconds = results[name].seconds
                    asyncio.run(load(url, png, args.clients, args.requests, results[name]))
                    done = len(results[name].latencies_ms) - before
                    print(
                        f"round {round_ + 1} {name}: {done} requests in "
                        f"{results[name].seconds - seconds:.1f} s",
                        flush=True,
                    )
                finally:
                    stop_server(proc)

    print(
        f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, ckpt {args.ckpt or args.model + ' (random weights)'}, "
        f"image {height}x{width}, {args.clients} clients x {args.requests} requests, "
        f"{args.rounds} rounds"
    )
    header = f"{'mode':<12} {'batch,wait':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
    header += f"{'req/s':>7} {'mean batch':>10} {'errors':>6}"
    print(header)
    failed = False
    for name, result in results.items():
        batch, wait = modes[name]
        lat = np.asarray(result.latencies_ms)
        p50, p90, p99 = np.percentile(lat, [50, 90, 99]) if lat.size else (np.nan,) * 3
        rate = result.requests / result.seconds if result.seconds else float("nan")
        mean_batch = float(np.mean(result.batch_sizes)) if result.batch_sizes else float("nan")
        print(
            f"{name:<12} {f'{batch},{wait:g}':>10} {p50:8.0f} {p90:8.0f} {p99:8.0f} "
            f"{rate:7.1f} {mean_batch:10.1f} {len(result.errors):6d}"
        )
        for err in result.errors[:5]:
            print(f"  {name} error: {err}")
        failed |= bool(result.errors)
    if failed:
        raise SystemExit("errors: every request must succeed")


if __name__ == "__main__":
    main()
