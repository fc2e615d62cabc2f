"""HTTP inference server (FastAPI): ``create_app(model, settings)``; ``segkit-serve`` runs it."""

from segkit.serve.app import create_app
from segkit.serve.batching import DynamicBatcher
from segkit.serve.schemas import ServeSettings

__all__ = ["DynamicBatcher", "ServeSettings", "create_app"]
