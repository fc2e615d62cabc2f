"""Request and response models of the HTTP API (they make the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "BatchingInfo",
    "ErrorResponse",
    "Health",
    "Limits",
    "Metadata",
    "PredictOptions",
    "PredictRequest",
    "PredictResponse",
    "ServeSettings",
    "Timing",
]


class ServeSettings(BaseModel):
    """Server limits and batching (``serve:`` in ``conf/serve.yaml``, where the defaults are)."""

    max_batch_size: int = Field(ge=1, description="most requests per model call; 1: no batching")
    max_wait_ms: float = Field(
        ge=0, description="how long a batch's first request waits for others to join it"
    )
    max_body_bytes: int = Field(gt=0, description="larger request bodies get 413")
    max_pixels: int = Field(gt=0, description="images with more pixels get 413 (header check)")


class PredictOptions(BaseModel):
    """Options of ``POST /predict`` (JSON fields, or form fields beside a multipart upload)."""

    overlay: bool = Field(False, description="also return the label map blended over the image")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="overlay opacity of the colours")
    classes: list[str] | None = Field(
        None,
        min_length=1,
        description="open-vocabulary models only: the class names (free text) to segment; "
        "label i is classes[i]",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="open-vocabulary models only: pixels whose best class probability stays "
        "below it match no class (label 255, or 65535 in a 16-bit PNG)",
    )


class PredictRequest(PredictOptions):
    """``POST /predict`` with ``Content-Type: application/json``."""

    image: str = Field(
        ...,
        description="the image file (PNG, JPEG, ...) in base64, plain or as a data URL",
        min_length=1,
    )


class Timing(BaseModel):
    """Where the time of one request went, in milliseconds."""

    decode_ms: float
    queue_ms: float = Field(description="waiting for the model (batch gathering, earlier batches)")
    inference_ms: float = Field(description="the model call of this request's batch")
    encode_ms: float = Field(description="PNG encoding, overlay, class counts")
    total_ms: float
    batch_size: int = Field(description="requests served by the same model call")


class PredictResponse(BaseModel):
    """Predictions for one image, at the image's own size."""

    model: str
    width: int
    height: int
    classes: list[str] | None = Field(
        description="the class names label ids index into (for open-vocabulary models the "
        "queried ones); null for a depth-only model"
    )
    labels_png: str | None = Field(
        description="base64 PNG of the label map: 8-bit palette PNG (pixel value = class id, "
        "255 = no class) up to 255 classes, else 16-bit grey (65535 = no class)"
    )
    class_counts: dict[str, int] = Field(
        default_factory=dict, description="pixels per class name, for the classes present"
    )
    unmatched_pixels: int = Field(
        0, description="pixels that matched no class (open-vocabulary threshold)"
    )
    overlay_png: str | None = Field(
        None, description="base64 PNG of the colours blended over the image (when overlay=true)"
    )
    depth_png: str | None = Field(
        None, description="depth models: base64 16-bit PNG of depth in millimetres (0 = none)"
    )
    depth_preview_png: str | None = Field(
        None, description="depth models with overlay=true: base64 PNG of the colour-mapped depth"
    )
    depth_min_m: float | None = Field(None, description="depth models: smallest depth, metres")
    depth_max_m: float | None = Field(None, description="depth models: largest depth, metres")
    timing: Timing


class Limits(BaseModel):
    max_body_bytes: int
    max_pixels: int


class BatchingInfo(BaseModel):
    max_batch_size: int
    max_wait_ms: float


class Metadata(BaseModel):
    """What the served model predicts and how the server is configured."""

    model: str
    heads: list[str] = Field(description="outputs of the model: seg (labels), depth (metres)")
    classes: list[str] | None
    palette: list[list[int]] | None = Field(description="RGB colour per class, as in overlays")
    open_vocabulary: bool = Field(description="whether POST /predict accepts classes=")
    limits: Limits
    batching: BatchingInfo
    segkit_version: str


class Health(BaseModel):
    status: str = Field(description='"ok" while the model worker runs')
    model: str


class ErrorResponse(BaseModel):
    """Every error: a status code and a message naming the problem."""

    detail: str
