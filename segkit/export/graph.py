"""The exportable graph: raw uint8 RGB images in, label maps / class scores / depth out, at the
input size, with every step of ``Segmentor.predict`` inside (whole-image inference only)."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models import Segmentor
from segkit.models.inference import InferenceConfig

__all__ = [
    "INPUT_LAYOUT",
    "BakedText",
    "SegmentationGraph",
    "export_mode",
    "unexported_test_cfg",
]

log = logging.getLogger("segkit.export")

INPUT_LAYOUT = "NCHW uint8 RGB 0-255"


def unexported_test_cfg(cfg: InferenceConfig) -> list[str]:
    """The parts of a test configuration an exported graph leaves out (it runs whole-image
    inference at one scale, unflipped); empty when the graph reproduces ``predict`` exactly."""
    notes = []
    if cfg.mode == "slide":
        notes.append(
            f"sliding-window inference (crop {list(cfg.crop_size)}, stride {list(cfg.stride)})"
        )
    if list(cfg.scales) != [1.0]:
        notes.append(f"multi-scale test-time augmentation (scales {list(cfg.scales)})")
    if cfg.flip:
        notes.append("flip test-time augmentation")
    return notes


@contextlib.contextmanager
def export_mode() -> Iterator[None]:
    """Tracing settings for export: ``nn.MultiheadAttention``'s fused inference kernel
    (``aten::_native_multi_head_attention``, chosen in eval mode without gradients, as in
    open_clip's towers) has no ONNX translation; its regular path computes the same."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


class SegmentationGraph(nn.Module):
    """A :class:`Segmentor` as one exportable function of raw images.

    ``forward(images)``: ``images (N, 3, H, W)`` uint8 RGB, 0-255 (NCHW) -> a tuple in the order
    of :attr:`output_names`:

    - ``labels (N, H, W)`` int64: the seg head's ``postprocess`` (argmax; open-vocabulary heads
      with a threshold give -1 where no class matches);
    - ``scores (N, C, H, W)`` float32: the class scores ``Segmentor.inference`` gives, resized to
      the input size (what ``predict(return_scores=True)`` returns as ``seg_scores``);
    - ``depth (N, 1, H, W)`` float32 metres, for models with a depth head.

    Inside: float conversion, normalisation (``Segmentor.forward``), the keep-ratio resize of
    ``test_cfg.resize`` (if set), the forward pass, and bilinear resizing back to ``(H, W)``.
    Sliding-window and test-time augmentation are not part of the graph (see
    :func:`unexported_test_cfg`). Open-vocabulary models are exported for their current classes:
    the text embeddings become constants and the text tower is left out.

    The model is shared, except for open-vocabulary models, which are copied with the text tower
    replaced by :class:`BakedText`; the wrapped model must be in eval mode.
    """

    def __init__(self, model: Segmentor) -> None:
        super().__init__()
        if model.training:
            raise ValueError("export a model in eval mode: call model.eval() first")
        self.open_vocabulary = model.open_vocabulary
        if self.open_vocabulary:
            head = model.heads["seg"]
            baked = BakedText(head.text_encoder, head.class_names)
            # deepcopy's memo: the copy gets `baked` in place of the text tower, which is never
            # copied (it can be most of the model's memory).
            model = copy.deepcopy(model, memo={id(head.text_encoder): baked})
        self.model = model
        for note in unexported_test_cfg(model.test_cfg):
            log.warning("export runs whole-image inference; the model's %s is left out", note)
        resize = model.test_cfg.resize
        self.resize = None if resize is None else (max(resize), min(resize))
        self.output_names = (["labels", "scores"] if "seg" in model.heads else []) + (
            ["depth"] if "depth" in model.heads else []
        )
        if not self.output_names:
            raise ValueError(
                f"nothing to export: the model has no seg or depth head ({list(model.heads)})"
            )

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        h, w = images.shape[2], images.shape[3]
        x = images.float()
        if self.resize is not None:
            x = F.interpolate(x, size=self._rescaled(images), mode="bilinear", align_corners=False)
        outputs = self.model(x)
        results: list[Tensor] = []
        for name in ("seg", "depth"):
            if name not in outputs:
                continue
            value = outputs[name]
            # As predict: to the network's input size (whole_inference), then, after a test
            # resize, to the image's own size (bilinear to the same size is the identity).
            value = F.interpolate(value, size=x.shape[2:], mode="bilinear", align_corners=False)
            if self.resize is not None:
                value = F.interpolate(value, size=(h, w), mode="bilinear", align_corners=False)
            if name == "seg":
                # Heads' postprocess reduces over dim 0 of one (C, H, W) sample; with the batch
                # moved behind the classes, (C, N, H, W) -> (N, H, W) is the same computation.
                results += [self.model.heads["seg"].postprocess(value.transpose(0, 1)), value]
            else:
                results.append(value.float())
        return tuple(results)

    def _rescaled(self, images: Tensor) -> list:
        """``rescale_size`` of the input's ``(H, W)``, traceable with dynamic sizes.

        The TorchScript-based ONNX exporter sees Python arithmetic on sizes as constants, so it
        gets the rule as tensor operations on the input's shape (float64, as Python's floats);
        ``torch.export`` (and eager mode) get it on symbolic integers."""
        long, short = self.resize
        if torch.jit.is_tracing():
            hw = torch._shape_as_tensor(images)[2:].double()
            factor = torch.minimum(long / hw.max(), short / hw.min())
            size = (hw * factor + 0.5).floor().long()
            return [size[0], size[1]]
        h, w = images.shape[2], images.shape[3]
        factor = torch.sym_min(long / torch.sym_max(h, w), short / torch.sym_min(h, w))
        return [torch.sym_int(h * factor + 0.5), torch.sym_int(w * factor + 0.5)]


class BakedText(nn.Module):
    """Stands in for a :class:`~segkit.models.openvocab.text.CLIPTextEncoder` inside an exported
    graph: the per-template embeddings ``(K, T, D)`` of fixed class names, as a buffer.

    ``encode``/``forward``/``logit_scale`` compute what the text tower computes from its cache,
    so the exported scores equal the model's; other names raise an error (re-export instead).
    """

    def __init__(self, encoder: nn.Module, class_names: Sequence[str]) -> None:
        super().__init__()
        self.class_names = [str(n) for n in class_names]
        with torch.no_grad():
            embeddings = encoder.encode(self.class_names)
        self.register_buffer("embeddings", embeddings.detach().clone())
        self.register_buffer("log_scale", encoder.clip.logit_scale.detach().clone())
        self.templates = encoder.templates
        self.embed_dim = encoder.embed_dim

    @property
    def logit_scale(self) -> Tensor:
        return self.log_scale.exp()

    def encode(self, names: Sequence[str]) -> Tensor:
        if [str(n) for n in names] != self.class_names:
            raise ValueError(
                f"the exported graph has the classes {self.class_names} baked in, not {list(names)}: "
                "set the classes on the model and export again"
            )
        return self.embeddings

    def forward(self, names: Sequence[str]) -> Tensor:
        return F.normalize(self.encode(names).mean(dim=1), dim=-1)
