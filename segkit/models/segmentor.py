"""Segmentor: encoder -> (neck) -> decoder -> heads, a plain ``nn.Module`` usable without Lightning."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.decoders.base import DecoderOutput
from segkit.models.heads.seg_head import segmentation_losses
from segkit.models.inference import InferenceConfig, rescale_size, tta_inference

ImageLike = Tensor | np.ndarray | str | Path

__all__ = ["AuxiliaryHead", "AuxiliaryLoss", "Segmentor"]


def _build(spec: nn.Module | Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    """A module as given, or built from a factory (a Hydra ``_partial_``) sized by ``kwargs``."""
    return spec if isinstance(spec, nn.Module) else spec(**kwargs)


class AuxiliaryHead(nn.Module):
    """A decoder + head pair on the encoder features, used for an extra training loss only
    (e.g. MMSegmentation's FCN auxiliary head on stage 3 with loss weight 0.4)."""

    def __init__(
        self,
        decoder: Callable[..., nn.Module],
        head: Callable[..., nn.Module],
        in_channels: Sequence[int],
        in_strides: Sequence[int],
    ) -> None:
        super().__init__()
        self.decoder = _build(decoder, in_channels=in_channels, in_strides=in_strides)
        self.head = _build(head, in_channels=self.decoder.channels)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.head(self.decoder(features))

    def loss(self, logits: Tensor, batch: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
        return self.head.loss(logits, batch, prefix=prefix)


class AuxiliaryLoss(nn.Module):
    """Losses on intermediate class logits that the decoder itself produces (returned in a
    :class:`~segkit.models.decoders.base.DecoderOutput` under this entry's name), e.g. OCRNet's
    soft object regions, which MMSegmentation supervises with weight 0.4.

    Args:
        losses: loss modules on logits upsampled to the label size.
        target_key: the batch entry holding the label map.
        in_channels, in_strides: given by the segmentor like to any auxiliary entry; unused.
    """

    def __init__(
        self,
        losses: Sequence[nn.Module],
        target_key: str = "mask",
        in_channels: Sequence[int] | None = None,
        in_strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.target_key = target_key

    def loss(self, logits: Tensor, batch: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
        return segmentation_losses(logits, batch[self.target_key], self.losses, prefix)


class Segmentor(nn.Module):
    """Encoder, optional neck, decoder and named task heads, with normalisation built in.

    Args:
        encoder: a :class:`~segkit.models.encoders.TimmEncoder` (anything with ``channels``,
            ``strides`` and ``forward(x) -> list[Tensor]``).
        decoder: a decoder or a factory ``decoder(in_channels=, in_strides=)``.
        heads: ``{name: head or factory head(in_channels=)}``; ``"seg"`` is the segmentation head,
            ``"depth"`` a depth head (metres); ``None`` entries are left out.
        auxiliary: ``{name: factory AuxiliaryHead(in_channels=, in_strides=)}``, training only.
        neck: optional factory ``neck(in_channels=, in_strides=)`` with ``channels``/``strides``.
        mean, std: per-channel normalisation of 0-255 RGB input.
        test_cfg: :class:`~segkit.models.inference.InferenceConfig` fields.
        class_names, palette, ignore_index: the label space, carried into checkpoints.
        channels_last: keep weights and activations in NHWC memory order (faster convolutions
            on CPUs and on GPUs with tensor cores; results are the same).
        loss_weighting: optional module re-weighting the heads' losses against each other
            (:class:`~segkit.models.task_weighting.UncertaintyWeighting`); by default each loss
            keeps its own ``loss_weight``.
        checkpoint: a segkit checkpoint or a weights file (``.pth``/``.safetensors``, e.g. from
            ``scripts/convert_mmseg.py``) whose weights are loaded into the built model
            (``weights_only=True``); missing or unexpected keys raise an error naming them.

    Inputs are RGB images ``(N, 3, H, W)``, float or uint8, in 0-255.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | Callable[..., nn.Module],
        heads: Mapping[str, nn.Module | Callable[..., nn.Module]],
        auxiliary: Mapping[str, Callable[..., nn.Module]] | None = None,
        neck: Callable[..., nn.Module] | None = None,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        test_cfg: Mapping[str, Any] | InferenceConfig | None = None,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        channels_last: bool = False,
        checkpoint: str | Path | None = None,
        loss_weighting: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        channels, strides = list(encoder.channels), list(encoder.strides)
        self.neck = None
        if neck is not None:
            self.neck = _build(neck, in_channels=channels, in_strides=strides)
            channels, strides = list(self.neck.channels), list(self.neck.strides)
        self.decoder = _build(decoder, in_channels=channels, in_strides=strides)
        self.heads = nn.ModuleDict(  # a head set to None in a config is left out
            {
                name: _build(h, in_channels=self.decoder.channels)
                for name, h in heads.items()
                if h is not None
            }
        )
        self.auxiliary = nn.ModuleDict(
            {
                name: _build(a, in_channels=channels, in_strides=strides)
                for name, a in (auxiliary or {}).items()
            }
        )
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)
        if isinstance(test_cfg, InferenceConfig):
            self.test_cfg = test_cfg
        else:
            self.test_cfg = InferenceConfig(**{k: v for k, v in dict(test_cfg or {}).items()})
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = [list(c) for c in palette] if palette is not None else None
        self.ignore_index = ignore_index
        self.channels_last = channels_last
        self.loss_weighting = loss_weighting
        if checkpoint is not None:
            from segkit.checkpoints.io import load_weights_into

            load_weights_into(self, checkpoint)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ training
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Images ``(N, 3, H, W)`` in 0-255 -> ``{head: (N, C, H/s, W/s)}`` at the decoder's
        stride ``s``; in training mode also ``{"aux.<name>": ...}`` for auxiliary heads."""
        x = (images.float() - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.encoder(x)
        if self.neck is not None:
            features = self.neck(features)
        decoded = self.decoder(features)
        extras: dict[str, Tensor] = {}
        if isinstance(decoded, DecoderOutput):
            decoded, extras = decoded.out, decoded.aux
        outputs = {name: head(decoded) for name, head in self.heads.items()}
        if self.training:
            for name, aux in self.auxiliary.items():
                if isinstance(aux, AuxiliaryLoss):
                    if name not in extras:
                        raise KeyError(
                            f"auxiliary loss {name!r} has no logits: the decoder returned "
                            f"{sorted(extras)}"
                        )
                    outputs[f"aux.{name}"] = extras[name]
                else:
                    outputs[f"aux.{name}"] = aux(features)
        return outputs

    def loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every head's (and auxiliary head's) losses, named ``<head>/<loss>``; sum them to train."""
        losses: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            losses.update(head.loss(outputs[name], batch, prefix=f"{name}/"))
        for name, aux in self.auxiliary.items():
            if f"aux.{name}" in outputs:
                losses.update(aux.loss(outputs[f"aux.{name}"], batch, prefix=f"aux.{name}/"))
        if self.loss_weighting is not None:
            losses = self.loss_weighting(losses)
        return losses

    # ------------------------------------------------------------------ open vocabulary
    @property
    def open_vocabulary(self) -> bool:
        """Whether the classes are names given at run time (an open-vocabulary ``seg`` head)."""
        return hasattr(self.heads["seg"], "set_classes") if "seg" in self.heads else False

    def set_classes(
        self, classes: Sequence[str], palette: Sequence[Sequence[int]] | None = None
    ) -> None:
        """Predict these classes (free text) from now on; open-vocabulary models only.

        The palette is kept when the number of classes is unchanged, else replaced by ``palette``
        (or a generated one when ``None``)."""
        if not self.open_vocabulary:
            raise TypeError(
                "this model's classes are fixed by its weights; classes= needs an "
                "open-vocabulary model (e.g. model=clearclip, catseg, san)"
            )
        classes = [str(c) for c in classes]
        self.heads["seg"].set_classes(classes)
        if palette is not None:
            self.palette = [list(c) for c in palette]
        elif self.palette is not None and len(self.palette) != len(classes):
            self.palette = None
        self.class_names = classes

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def inference(self, images: Tensor) -> dict[str, Tensor]:
        """Test-time outputs at the input size, by ``test_cfg`` (whole / slide, scales, flip).

        ``images (N, 3, H, W)`` in 0-255 -> ``{head: (N, C, H, W)}`` (class logits for ``seg``).
        """
        return tta_inference(self._eval_forward, images, self.test_cfg)

    def _eval_forward(self, images: Tensor) -> dict[str, Tensor]:
        return {k: v for k, v in self(images).items() if not k.startswith("aux.")}

    @torch.no_grad()
    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        return_scores: bool = False,
        classes: Sequence[str] | None = None,
        threshold: float | None = None,
        batch_size: int = 1,
    ) -> list[dict[str, Tensor]]:
        """Predict label maps for RGB images of any sizes.

        Args:
            images: a path, an ``(H, W, 3)`` uint8 array, a ``(3, H, W)`` / ``(N, 3, H, W)``
                tensor in 0-255, or a list of these.
            return_scores: also return the class scores ``(C, H, W)`` as ``"seg_scores"``.
            classes: open-vocabulary models: the class names (free text) to segment, for this
                call only; label ``i`` is ``classes[i]``.
            threshold: open-vocabulary models: pixels whose probability over ``classes`` stays
                below it get label -1 (no match); ``None`` keeps the head's setting.
            batch_size: images of the same size run through the network up to this many at a
                time (faster; outputs equal one-at-a-time up to float rounding).

        Returns:
            One dict per image: ``"seg"``, an ``(H, W)`` int64 label map at the image's own size.
        """
        was_training = self.training
        self.eval()
        device = self.mean.device
        restore = None
        if classes is not None or threshold is not None:
            if not self.open_vocabulary:
                raise TypeError(
                    "classes= and threshold= need an open-vocabulary model; this one's classes "
                    f"are fixed: {self.class_names}"
                )
            head = self.heads["seg"]
            restore = (list(self.class_names or head.class_names), self.palette, head.threshold)
            if classes is not None:
                self.set_classes(classes)
            if threshold is not None:
                head.threshold = threshold
        image_list = _as_image_list(images)
        results: list[dict[str, Tensor]] = [{} for _ in image_list]
        try:
            for chunk in _same_size_chunks(image_list, max(1, batch_size)):
                x = torch.stack([image_list[i] for i in chunk]).to(device)
                size = x.shape[2:]
                if self.test_cfg.resize is not None:
                    target = rescale_size(size, self.test_cfg.resize)
                    x = F.interpolate(x.float(), size=target, mode="bilinear", align_corners=False)
                for name, value in self.inference(x).items():
                    if value.shape[2:] != size:
                        value = F.interpolate(
                            value, size=size, mode="bilinear", align_corners=False
                        )
                    for i, scores in zip(chunk, value):
                        results[i][name] = self.heads[name].postprocess(scores)
                        if return_scores:
                            results[i][f"{name}_scores"] = scores
        finally:
            self.train(was_training)
            if restore is not None:
                self.heads["seg"].set_classes(restore[0])
                self.class_names, self.palette = restore[0], restore[1]
                self.heads["seg"].threshold = restore[2]
        return results


def _same_size_chunks(images: Sequence[Tensor], batch_size: int) -> list[list[int]]:
    """Indices of ``images`` grouped by size, in order of first appearance, at most
    ``batch_size`` per group."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    return [
        indices[start : start + batch_size]
        for indices in groups.values()
        for start in range(0, len(indices), batch_size)
    ]


def _as_image_list(images: ImageLike | Sequence[ImageLike]) -> list[Tensor]:
    """Normalise the accepted input forms to a list of ``(3, H, W)`` float tensors in 0-255."""
    if isinstance(images, Tensor):
        if images.ndim == 3:
            return [images.float()]
        if images.ndim == 4:
            return [im.float() for im in images]
        raise ValueError(f"expected (3, H, W) or (N, 3, H, W) tensor, got {tuple(images.shape)}")
    if isinstance(images, np.ndarray | str | Path):
        images = [images]
    out = []
    for image in images:
        if isinstance(image, str | Path):
            from segkit.data.io import read_image

            image = read_image(image)
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
            array = np.require(image, requirements=["C", "W"])  # a copy only when read-only
            out.append(torch.from_numpy(array).permute(2, 0, 1).float())
        else:
            out.extend(_as_image_list(image))
    return out
