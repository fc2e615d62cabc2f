"""Text-conditioned segmentation head: the classes are whatever names it is given."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.heads.seg_head import segmentation_losses
from segkit.models.losses import CrossEntropyLoss
from segkit.models.openvocab.text import CLIPTextEncoder

__all__ = ["NO_CLASS", "OpenVocabHead", "TextHead"]

NO_CLASS = -1  # label of pixels that match no query (with a threshold)


class OpenVocabHead(nn.Module):
    """What every open-vocabulary head shares: a class list set at run time, the query
    embeddings of its names, and the no-match threshold. Subclasses implement ``forward``."""

    def __init__(
        self,
        text_encoder: CLIPTextEncoder,
        class_names: Sequence[str],
        threshold: float | None = None,
        losses: list[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.class_names = [str(n) for n in class_names]
        self.threshold = threshold
        self.target_key = target_key
        self.losses = nn.ModuleList(losses if losses is not None else [CrossEntropyLoss()])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_classes(self, names: Sequence[str]) -> None:
        """Predict these classes from now on (free text; at least one)."""
        names = [str(n).strip() for n in names]
        if not names or any(not n for n in names):
            raise ValueError(f"classes must be non-empty names, got {names}")
        self.class_names = names

    def text_embeddings(self) -> Tensor:
        """Query embeddings ``(K, D)`` of the current class names."""
        return self.text_encoder(self.class_names)

    def loss(self, logits: Tensor, batch: dict, prefix: str = "") -> dict[str, Tensor]:
        """Losses of ``logits (N, K, h, w)`` against ``batch[target_key] (N, H, W)``, whose ids
        index the current class names."""
        return segmentation_losses(logits, batch[self.target_key], self.losses, prefix)

    def postprocess(self, scores: Tensor) -> Tensor:
        """Scores ``(K, H, W)`` -> labels ``(H, W)``; with a threshold, pixels whose softmax
        probability over the queries stays below it get :data:`NO_CLASS` (-1)."""
        labels = scores.argmax(dim=0)
        if self.threshold is not None:
            confidence = scores.float().softmax(dim=0).amax(dim=0)
            labels = torch.where(confidence < self.threshold, NO_CLASS, labels)
        return labels


class TextHead(OpenVocabHead):
    """Pixel embeddings against query embeddings: ``logits = s * cos(pixel, query)``.

    Args:
        in_channels: channels of the decoded map (from the segmentor).
        text_encoder: the CLIP text tower that embeds the class names.
        class_names: the initial classes (the training classes; change with :meth:`set_classes`).
        projection: a 1x1 convolution from ``in_channels`` to the text embedding size (needed
            when they differ; off for CLIP's own dense embeddings).
        logit_scale: the temperature ``s``; ``None`` uses CLIP's learned one (100 for OpenAI's).
        learn_scale: train ``log s``.
        threshold, losses, target_key: as :class:`OpenVocabHead`.
    """

    def __init__(
        self,
        in_channels: int,
        text_encoder: CLIPTextEncoder,
        class_names: Sequence[str],
        projection: bool = False,
        logit_scale: float | None = None,
        learn_scale: bool = False,
        threshold: float | None = None,
        losses: list[nn.Module] | None = None,
        target_key: str = "mask",
    ) -> None:
        super().__init__(text_encoder, class_names, threshold, losses, target_key)
        dim = text_encoder.embed_dim
        if not projection and in_channels != dim:
            raise ValueError(
                f"the decoded map has {in_channels} channels, the text embeddings {dim}: "
                "set projection: true"
            )
        self.proj = nn.Conv2d(in_channels, dim, 1) if projection else nn.Identity()
        if logit_scale is None:  # CLIP's own (kept as a tensor: works on the meta device too)
            log_scale = text_encoder.clip.logit_scale.detach().clone().reshape(())
        else:
            log_scale = torch.tensor(math.log(float(logit_scale)))
        self.log_scale = nn.Parameter(log_scale, requires_grad=learn_scale)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, h, w)`` -> logits ``(N, K, h, w)`` for the current classes."""
        pixels = F.normalize(self.proj(x).float(), dim=1)
        queries = self.text_embeddings().to(pixels)
        return self.log_scale.exp() * torch.einsum("nchw,kc->nkhw", pixels, queries)
