"""segkit.serve and segkit-serve: predictions equal to ``model.predict``, limits and errors,
dynamic batching, the CLI's clean shutdown, and the web page in a real browser."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import TINY_CLIP
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

import segkit
from segkit.checkpoints.io import save_checkpoint
from segkit.cli._hydra import CONFIG_DIR
from segkit.serve import DynamicBatcher, ServeSettings, create_app
from segkit.serve.batching import BatcherStoppedError

SETTINGS = ServeSettings(
    max_batch_size=8, max_wait_ms=5, max_body_bytes=256 * 1024, max_pixels=128 * 128
)


def _model_config(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["paths.output_dir=unused", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A segkit checkpoint of a SegFormer-B0 on the shapes classes (random weights: serving
    must reproduce ``model.predict``, whatever the model learnt)."""
    config = _model_config([])
    torch.manual_seed(0)
    model = instantiate(config, _convert_="partial")
    return save_checkpoint(
        tmp_path_factory.mktemp("serve") / "tiny.ckpt", config, model.state_dict()
    )


@pytest.fixture(scope="module")
def model(ckpt: Path):
    return segkit.load(ckpt)


@pytest.fixture(scope="module")
def client(model) -> Iterator[TestClient]:
    with TestClient(create_app(model, SETTINGS, name="tiny.ckpt")) as c:
        yield c


def _image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width x height`` RGB pixels with a few bytes of data: a
    decompression bomb's header (decoding it would allocate width*height*3 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _assert_good_request_works(client: TestClient, model) -> None:
    image = _image(40, 56, seed=7)
    response = client.post("/predict", files={"file": ("ok.png", _png(image), "image/png")})
    assert response.status_code == 200, response.text
    expected = model.predict(image)[0]["seg"].numpy()
    np.testing.assert_array_equal(_decode_png(response.json()["labels_png"]), expected)


# ---------------------------------------------------------------------- predictions
def test_multipart_and_base64_predictions_equal_model_predict(client, model) -> None:
    image = _image()
    expected = model.predict(image)[0]["seg"].numpy()
    multipart = client.post(
        "/predict", files={"file": ("a.png", _png(image), "image/png")}, data={"overlay": "true"}
    )
    as_json = client.post("/predict", json={"image": base64.b64encode(_png(image)).decode()})
    for response in (multipart, as_json):
        assert response.status_code == 200, response.text
        body = response.json()
        labels = _decode_png(body["labels_png"])
        assert labels.dtype == np.uint8 and labels.shape == (48, 64)
        np.testing.assert_array_equal(labels, expected)
        assert body["width"] == 64 and body["height"] == 48 and body["model"] == "tiny.ckpt"
        assert body["classes"] == model.class_names
        assert sum(body["class_counts"].values()) + body["unmatched_pixels"] == 48 * 64
        present = np.unique(expected)
        assert body["class_counts"] == {
            model.class_names[i]: int((expected == i).sum()) for i in present
        }
        assert body["depth_png"] is None and body["timing"]["batch_size"] >= 1
    overlay = _decode_png(multipart.json()["overlay_png"])
    assert overlay.shape == (48, 64, 3) and not np.array_equal(overlay, image)
    assert as_json.json()["overlay_png"] is None  # not asked


def test_metadata_health_openapi_and_page(client, model) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "tiny.ckpt"}
    meta = client.get("/metadata").json()
    assert meta["classes"] == model.class_names and meta["palette"] == model.palette
    assert meta["heads"] == ["seg"] and meta["open_vocabulary"] is False
    assert meta["limits"] == {"max_body_bytes": 256 * 1024, "max_pixels": 128 * 128}
    assert meta["batching"] == {"max_batch_size": 8, "max_wait_ms": 5.0}
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse"
    )
    assert {"413", "415", "422"} <= set(predict["responses"])
    assert "labels_png" in schema["components"]["schemas"]["PredictResponse"]["properties"]
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # works offline


# ---------------------------------------------------------------------- bad input
def _chunked(total: int) -> Iterator[bytes]:
    for _ in range(total // 65536):
        yield b"x" * 65536


BAD_REQUESTS: dict[str, tuple[Callable[[TestClient], httpx.Response], int, str]] = {
    "content-length over the limit": (
        lambda c: c.post("/predict", files={"file": ("a.png", b"\0" * 300_000, "image/png")}),
        413,
        "Content-Length",
    ),
    "chunked body over the limit": (
        lambda c: c.post(
            "/predict", content=_chunked(1 << 20), headers={"content-type": "application/json"}
        ),
        413,
        "more than 262144 bytes received",
    ),
    "too many pixels": (
        lambda c: c.post(
            "/predict", files={"file": ("a.png", _png(_image(200, 200)), "image/png")}
        ),
        413,
        "200x200 = 40000 pixels",
    ),
    "header declaring too many pixels": (
        lambda c: c.post("/predict", files={"file": ("a.png", _png_header_only(1000, 1000), "")}),
        413,
        "1000x1000",
    ),
    "decompression bomb": (
        lambda c: c.post("/predict", files={"file": ("a.png", _png_header_only(30000, 30000), "")}),
        413,
        "too large",
    ),
    "not an image": (
        lambda c: c.post("/predict", files={"file": ("a.txt", b"hello world", "text/plain")}),
        415,
        "not an image",
    ),
    "truncated png": (
        lambda c: c.post("/predict", files={"file": ("a.png", _png(_image())[:300], "image/png")}),
        415,
        "truncated",
    ),
    "empty file": (
        lambda c: c.post("/predict", files={"file": ("a.png", b"", "image/png")}),
        415,
        "empty",
    ),
    "no file field": (
        lambda c: c.post("/predict", files={"image": ("a.png", _png(_image()), "image/png")}),
        400,
        "no file field 'file'",
    ),
    "bad base64": (
        lambda c: c.post("/predict", json={"image": "not base64 at all!"}),
        400,
        "not valid base64",
    ),
    "bad json": (
        lambda c: c.post(
            "/predict", content=b'{"image": ', headers={"content-type": "application/json"}
        ),
        400,
        "Invalid JSON",
    ),
    "json without image": (
        lambda c: c.post("/predict", json={"overlay": True}),
        422,
        "image: Field required",
    ),
    "overlay not a boolean": (
        lambda c: c.post(
            "/predict",
            files={"file": ("a.png", _png(_image()), "image/png")},
            data={"overlay": "maybe"},
        ),
        422,
        "overlay",
    ),
    "classes on a closed-vocabulary model": (
        lambda c: c.post(
            "/predict",
            files={"file": ("a.png", _png(_image()), "image/png")},
            data={"classes": "cat,dog"},
        ),
        400,
        "open-vocabulary",
    ),
    "unsupported content type": (
        lambda c: c.post("/predict", content=b"abc", headers={"content-type": "text/plain"}),
        415,
        "multipart/form-data",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_status_and_message_and_the_server_keeps_serving(
    client, model, case: str
) -> None:
    send, status, message = BAD_REQUESTS[case]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    response = send(client)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert response.status_code == status, response.text
    assert message in response.json()["detail"], response.json()
    assert grown_mib < 200, f"{case}: peak memory grew by {grown_mib:.0f} MiB"  # no bomb decoded
    _assert_good_request_works(client, model)


# ---------------------------------------------------------------------- other models
def test_open_vocabulary_model_segments_the_queried_classes() -> None:
    torch.manual_seed(0)
    model = instantiate(_model_config(["model=clearclip", *TINY_CLIP]), _convert_="partial").eval()
    image = _image(40, 48, seed=3)
    queries = ["a cat", "green grass", "blue sky"]
    with TestClient(create_app(model, SETTINGS, name="clip")) as client:
        meta = client.get("/metadata").json()
        assert meta["open_vocabulary"] is True and meta["classes"] == model.class_names
        response = client.post(
            "/predict",
            files={"file": ("a.png", _png(image), "image/png")},
            data={"classes": queries, "overlay": "true"},  # repeated form fields
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["classes"] == queries
        expected = model.predict(image, classes=queries)[0]["seg"].numpy()
        np.testing.assert_array_equal(_decode_png(body["labels_png"]), expected)
        assert set(body["class_counts"]) <= set(queries)
        assert sum(body["class_counts"].values()) == 40 * 48
        # a threshold no pixel reaches: every pixel matches no class (255 in the PNG)
        strict = client.post(
            "/predict",
            json={
                "image": base64.b64encode(_png(image)).decode(),
                "classes": queries,
                "threshold": 1.0,
            },
        ).json()
        assert strict["unmatched_pixels"] == 40 * 48 and strict["class_counts"] == {}
        assert (_decode_png(strict["labels_png"]) == 255).all()
        assert client.get("/metadata").json()["classes"] == model.class_names  # restored


@pytest.mark.parametrize("config", ["segformer_depth", "segformer_depth_only"])
def test_depth_model_returns_millimetre_png(config: str) -> None:
    torch.manual_seed(0)
    model = instantiate(_model_config([f"model={config}"]), _convert_="partial").eval()
    image = _image(32, 40, seed=5)
    with TestClient(create_app(model, SETTINGS, name=config)) as client:
        heads = client.get("/metadata").json()["heads"]
        response = client.post(
            "/predict", files={"file": ("a.png", _png(image), "")}, data={"overlay": "true"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = model.predict(image)[0]
    depth = expected["depth"].numpy()
    stored = _decode_png(body["depth_png"])
    assert stored.dtype == np.uint16 and stored.shape == (32, 40)
    np.testing.assert_array_equal(stored, np.round(depth * 1000).astype(np.uint16))
    assert body["depth_min_m"] == pytest.approx(float(depth.min()))
    assert body["depth_max_m"] == pytest.approx(float(depth.max()))
    assert _decode_png(body["depth_preview_png"]).shape == (32, 40, 3)
    if config == "segformer_depth":
        assert heads == ["depth", "seg"]
        np.testing.assert_array_equal(_decode_png(body["labels_png"]), expected["seg"].numpy())
    else:
        assert heads == ["depth"]
        assert body["labels_png"] is None and body["classes"] is None


# ---------------------------------------------------------------------- batching
def test_batcher_sends_errors_to_their_own_requests_and_survives() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError(f"negative input in {items}")
        return [10 * i for i in items]

    batcher = DynamicBatcher(run, max_batch_size=8, max_wait_ms=100)

    async def main() -> list:
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(i) for i in [1, 2, -3, 4]), return_exceptions=True
            )
        finally:
            batcher.stop()

    results = asyncio.run(main())
    assert [r[0] for r in results if not isinstance(r, Exception)] == [10, 20, 40]
    assert isinstance(results[2], ValueError) and "-3" in str(results[2])
    assert calls[0] == [1, 2, -3, 4]  # one batch first, then each alone to find the culprit
    assert not batcher.running

    with pytest.raises(BatcherStoppedError):
        asyncio.run(batcher.submit(1))


@pytest.mark.parametrize("max_batch_size", [8, 1])
def test_concurrent_requests_are_batched_with_unbatched_results(
    model, monkeypatch, max_batch_size: int
) -> None:
    images = [_image(48, 64, seed=i) if i % 2 else _image(40, 56, seed=i) for i in range(12)]
    expected = [model.predict(image)[0]["seg"].numpy() for image in images]  # one at a time
    settings = SETTINGS.model_copy(update={"max_batch_size": max_batch_size, "max_wait_ms": 300})
    app = create_app(model, settings, name="tiny")
    calls: list[int] = []
    predict = model.predict

    def counting_predict(batch, **kwargs):
        calls.append(len(batch))
        return predict(batch, **kwargs)

    monkeypatch.setattr(model, "predict", counting_predict)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return await asyncio.gather(
                *(
                    client.post("/predict", files={"file": ("a.png", _png(im), "image/png")})
                    for im in images
                )
            )

    responses = asyncio.run(main())
    for response, labels in zip(responses, expected):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(_decode_png(response.json()["labels_png"]), labels)
    sizes = [r.json()["timing"]["batch_size"] for r in responses]
    assert sum(calls) == len(images)
    if max_batch_size == 1:
        assert len(calls) == len(images) and set(sizes) == {1}
    else:
        assert len(calls) < len(images) and max(calls) <= 8 and max(sizes) > 1, calls


# ---------------------------------------------------------------------- the real CLI
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Ids of all processes below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start_server(ckpt: Path, tmp_path: Path, *overrides: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segkit.cli.serve",
            f"ckpt_path={ckpt}",
            f"port={port}",
            f"hydra.run.dir={tmp_path / 'run'}",
            *overrides,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"segkit-serve exited with {proc.returncode}:\n{proc.stdout.read()}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise AssertionError(f"segkit-serve did not answer /health:\n{proc.stdout.read()}")


def _stop_and_check(proc: subprocess.Popen, url: str, sig: int) -> str:
    """Send ``sig``; the server and every process it started must be gone within 10 s, and the
    port free. Returns the server's output."""
    family = _descendants(proc.pid)
    proc.send_signal(sig)
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, output
    time.sleep(0.2)
    assert not [pid for pid in family if _alive(pid)], f"children left alive: {family}"
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises if something still listens
    return output


def test_cli_serves_then_exits_cleanly_on_sigterm(ckpt, model, tmp_path) -> None:
    proc, url = _start_server(ckpt, tmp_path, "serve.max_body_bytes=100000")
    try:
        image = _image(48, 64, seed=11)
        response = httpx.post(f"{url}/predict", files={"file": ("a.png", _png(image), "image/png")})
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(
            _decode_png(response.json()["labels_png"]), model.predict(image)[0]["seg"].numpy()
        )
        # a body without Content-Length (chunked) is cut off by counting what uvicorn delivers
        chunked = httpx.post(
            f"{url}/predict",
            content=_chunked(200_000),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413, chunked.text
        assert httpx.get(f"{url}/metadata").json()["limits"]["max_body_bytes"] == 100000
    except BaseException:
        proc.kill()
        raise
    output = _stop_and_check(proc, url, signal.SIGTERM)
    assert "Traceback" not in output, output


# ---------------------------------------------------------------------- the web page
def test_web_page_shows_overlay_and_class_counts_in_a_browser(ckpt, tmp_path) -> None:
    required = os.environ.get("SEGKIT_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed")
    if not Path("/usr/bin/chromium").exists():
        if required:
            pytest.fail("SEGKIT_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    picture = tmp_path / "photo.png"
    Image.fromarray(_image(48, 64, seed=2)).save(picture)
    proc, url = _start_server(ckpt, tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            try:
                page = browser.new_page()
                page.goto(url + "/")
                page.wait_for_selector("#meta:has-text('tiny.ckpt')")
                page.set_input_files("#file", str(picture))
                page.click("#submit")
                page.wait_for_function(
                    "() => { const i = document.getElementById('overlay');"
                    " return !i.hidden && i.complete && i.naturalWidth > 0; }",
                    timeout=30_000,
                )
                assert page.eval_on_selector("#overlay", "i => i.naturalWidth") == 64
                rows = page.locator("#counts tbody tr")
                assert rows.count() >= 1
                counted = sum(
                    int(rows.nth(i).locator("td").nth(1).inner_text()) for i in range(rows.count())
                )
                assert counted == 48 * 64
                assert page.inner_text("#error") == ""
            finally:
                browser.close()
    except BaseException:
        proc.kill()
        raise
    _stop_and_check(proc, url, signal.SIGINT)
