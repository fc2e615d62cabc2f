"""The FastAPI app: ``POST /predict``, ``GET /health``, ``GET /metadata``, ``GET /`` (web page)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

import segkit
from segkit.serve.batching import BatcherStoppedError, DynamicBatcher
from segkit.serve.decode import BadImageError, ImageTooLargeError, decode_base64, decode_image
from segkit.serve.encode import depth_fields, label_fields
from segkit.serve.limits import BodyLimitMiddleware
from segkit.serve.predictor import ModelInput, ServedModel
from segkit.serve.schemas import (
    BatchingInfo,
    ErrorResponse,
    Health,
    Limits,
    Metadata,
    PredictOptions,
    PredictRequest,
    PredictResponse,
    ServeSettings,
)

__all__ = ["create_app"]

log = logging.getLogger("segkit.serve")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "bad JSON, base64 or form fields; classes= on a closed-vocabulary model",
        413: "body larger than max_body_bytes, or image with more than max_pixels pixels",
        415: "not an image, corrupt or truncated image, or an unsupported Content-Type",
        422: "fields of the wrong type or out of range",
        500: "the model failed on this input",
        503: "the server is starting or stopping",
    }.items()
}

_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "the image file"},
        "overlay": {"type": "boolean", "default": False},
        "alpha": {"type": "number", "default": 0.5},
        "classes": {
            "type": "array",
            "items": {"type": "string"},
            "description": "repeat the field, or separate names with commas",
        },
        "threshold": {"type": "number"},
    },
}


def create_app(model: Any, settings: ServeSettings, name: str = "model") -> FastAPI:
    """A FastAPI app serving ``model`` (anything ``segkit.load`` returns).

    Requests are batched by a :class:`~segkit.serve.batching.DynamicBatcher` whose worker thread
    starts and stops with the app's lifespan (``with TestClient(app)`` or uvicorn). The model
    is called once here (warm-up) to learn its outputs.
    """
    served = ServedModel(model, name)
    batcher: DynamicBatcher[ModelInput, dict[str, np.ndarray]] = DynamicBatcher(
        served.predict_batch, settings.max_batch_size, settings.max_wait_ms
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        log.info("serving %s (%s)", name, ", ".join(served.heads))
        try:
            yield
        finally:
            await run_in_threadpool(batcher.stop)

    app = FastAPI(
        title="segkit",
        version=segkit.__version__,
        description="Semantic segmentation (and depth) predictions from a segkit model.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.state.served = served
    app.state.batcher = batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(files("segkit.serve").joinpath("page.html").read_text("utf-8"))

    @app.get("/health", response_model=Health, responses={503: _ERRORS[503]})
    async def health() -> Any:
        """``ok`` while the model worker runs (a load balancer's readiness check)."""
        if not batcher.running:
            return JSONResponse({"status": "stopped", "model": name}, status_code=503)
        return Health(status="ok", model=name)

    @app.get("/metadata", response_model=Metadata)
    async def metadata() -> Metadata:
        """The model's outputs, classes and palette, and the server's limits and batching."""
        return Metadata(
            model=name,
            heads=served.heads,
            classes=served.class_names,
            palette=served.palette,
            open_vocabulary=served.open_vocabulary,
            limits=Limits(max_body_bytes=settings.max_body_bytes, max_pixels=settings.max_pixels),
            batching=BatchingInfo(
                max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms
            ),
            segkit_version=segkit.__version__,
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={k: v for k, v in _ERRORS.items() if k != 503},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
                    "application/json": {"schema": PredictRequest.model_json_schema()},
                },
            }
        },
    )
    async def predict(request: Request) -> PredictResponse:
        """Label map (and depth) of one image: a multipart upload (field ``file``, options as
        form fields) or JSON ``{"image": "<base64>", ...}``."""
        start = time.perf_counter()
        data, options = await _read_request(request)
        if (options.classes is not None or options.threshold is not None) and not (
            served.open_vocabulary
        ):
            raise HTTPException(
                400,
                f"classes= and threshold= need an open-vocabulary model; {name} predicts the "
                f"fixed classes {served.class_names}",
            )
        try:
            image = await run_in_threadpool(decode_image, data, settings.max_pixels)
        except ImageTooLargeError as err:
            raise HTTPException(413, str(err)) from None
        except BadImageError as err:
            raise HTTPException(415, str(err)) from None
        decoded = time.perf_counter()
        item = ModelInput(
            image,
            tuple(options.classes) if options.classes is not None else None,
            options.threshold,
        )
        try:
            prediction, info = await batcher.submit(item, item.key)
        except BatcherStoppedError as err:
            raise HTTPException(503, str(err)) from None
        except Exception as err:  # the model's own error, for this request only
            log.exception("model failed")
            raise HTTPException(500, f"the model failed on this image: {err}") from None
        predicted = time.perf_counter()
        classes = list(options.classes) if options.classes is not None else served.class_names
        palette = served.palette if options.classes is None else None
        fields = await run_in_threadpool(
            _fields, image, prediction, classes, palette, options.overlay, options.alpha
        )
        done = time.perf_counter()
        height, width = image.shape[:2]
        return PredictResponse(
            model=name,
            width=width,
            height=height,
            classes=classes if "seg" in prediction else None,
            timing={
                "decode_ms": 1000 * (decoded - start),
                "queue_ms": 1000 * info.queue_s,
                "inference_ms": 1000 * info.run_s,
                "encode_ms": 1000 * (done - predicted),
                "total_ms": 1000 * (done - start),
                "batch_size": info.batch_size,
            },
            **fields,
        )

    return app


def _fields(
    image: np.ndarray,
    prediction: dict[str, np.ndarray],
    classes: list[str] | None,
    palette: list[list[int]] | None,
    with_overlay: bool,
    alpha: float,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"labels_png": None}
    if "seg" in prediction:
        fields.update(label_fields(image, prediction["seg"], classes, palette, with_overlay, alpha))
    if "depth" in prediction:
        fields.update(depth_fields(prediction["depth"], with_preview=with_overlay))
    return fields


async def _read_request(request: Request) -> tuple[bytes, PredictOptions]:
    """The image bytes and options of a multipart or JSON ``/predict`` request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=64)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                400, "multipart body has no file field 'file' (the image: -F file=@image.png)"
            )
        data = await upload.read()
        raw: dict[str, Any] = {}
        for key in ("overlay", "alpha", "threshold"):
            if key in form:
                raw[key] = form[key]
        if "classes" in form:
            raw["classes"] = [
                name.strip()
                for value in form.getlist("classes")
                for name in str(value).split(",")
                if name.strip()
            ]
        try:
            options = PredictOptions.model_validate(raw)
        except ValidationError as err:
            raise HTTPException(422, _validation_message(err)) from None
        return data, options
    if content_type in ("application/json", ""):
        body = await request.body()
        try:
            parsed = PredictRequest.model_validate_json(body)
        except ValidationError as err:
            status = 400 if any(e["type"] == "json_invalid" for e in err.errors()) else 422
            raise HTTPException(status, _validation_message(err)) from None
        try:
            data = decode_base64(parsed.image)
        except ValueError as err:
            raise HTTPException(400, str(err)) from None
        return data, PredictOptions.model_validate(parsed.model_dump(exclude={"image"}))
    raise HTTPException(
        415,
        f"Content-Type {content_type!r} is not supported: send multipart/form-data (field "
        "'file') or application/json ({'image': '<base64>'})",
    )


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "invalid request: " + "; ".join(parts)
