"""An exported ``.onnx`` file as a predictor with :meth:`Segmentor.predict`'s interface,
running on onnxruntime (no PyTorch model needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from segkit.export.metadata import ExportMetadata
from segkit.models.segmentor import ImageLike, _as_image_list

__all__ = ["OnnxSegmentor", "providers_for"]


def providers_for(device: str | torch.device) -> list[str]:
    """onnxruntime execution providers for a torch-style device: ``"cpu"`` -> CPU;
    ``"cuda"``/``"cuda:N"`` -> CUDA then CPU (needs the ``onnxruntime-gpu`` package)."""
    kind = torch.device(device).type
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"no onnxruntime provider for device {device!r}; use 'cpu' or 'cuda'")


class OnnxSegmentor:
    """A model exported by ``segkit-export format=onnx``, run by onnxruntime.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU only).

    Attributes:
        class_names, palette, ignore_index: the label space stored at export.
        heads: ``["seg"]``, ``["depth"]`` or both.
        metadata: everything the file says about itself (:class:`ExportMetadata`).
        open_vocabulary: always ``False``: an open-vocabulary model's classes are baked in.
    """

    open_vocabulary = False

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(
                "running an exported .onnx model needs onnxruntime: pip install segkit[export]"
            ) from err
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node warnings on stderr
        # Idle worker threads would otherwise spin and slow down PyTorch in the same process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ValueError(
                f"cannot read {path} as an ONNX model (truncated, corrupt or not ONNX): {err}"
            ) from err
        entries = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ExportMetadata.from_strings(entries, str(path))
        self.path = path
        self.class_names = self.metadata.class_names
        self.palette = self.metadata.palette
        self.ignore_index = self.metadata.ignore_index
        self.heads = self.metadata.heads
        self._outputs = [o.name for o in self.session.get_outputs()]
        if self._outputs != self.metadata.outputs:
            raise ValueError(
                f"{path}: outputs {self._outputs} differ from its metadata {self.metadata.outputs}"
            )

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Raw run: ``(N, 3, H, W)`` uint8 -> ``{output name: array}``."""
        return dict(zip(self._outputs, self.session.run(None, {"images": images})))

    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        return_scores: bool = False,
        classes: Sequence[str] | None = None,
        threshold: float | None = None,
    ) -> list[dict[str, Tensor]]:
        """:meth:`Segmentor.predict` on the exported graph (whole-image inference).

        Args:
            images: a path, an ``(H, W, 3)`` uint8 array, a ``(3, H, W)`` / ``(N, 3, H, W)``
                tensor in 0-255 (rounded to uint8: the graph's input type), or a list of these.
            return_scores: also return the class scores ``(C, H, W)`` as ``"seg_scores"``.
            classes, threshold: not supported (baked in at export); given, they raise an error.

        Returns:
            One dict per image: ``"seg"`` ``(H, W)`` int64 labels, ``"seg_scores"`` if asked,
            ``"depth"`` ``(H, W)`` float metres for depth models.
        """
        if classes is not None or threshold is not None:
            raise TypeError(
                f"{self.path.name}: the classes (and threshold) were baked in at export "
                f"({self.class_names}); set them on the PyTorch model and export again"
            )
        results = []
        for image in _as_image_list(images):
            array = image.round().clamp(0, 255).to(torch.uint8).unsqueeze(0).numpy()
            outputs = self(array)
            result: dict[str, Tensor] = {}
            if "labels" in outputs:
                result["seg"] = torch.from_numpy(outputs["labels"][0])
                if return_scores:
                    result["seg_scores"] = torch.from_numpy(outputs["scores"][0])
            if "depth" in outputs:
                result["depth"] = torch.from_numpy(outputs["depth"][0, 0])
            results.append(result)
        return results

    def __repr__(self) -> str:
        return f"OnnxSegmentor({str(self.path)!r}, heads={self.heads}, classes={self.class_names})"
