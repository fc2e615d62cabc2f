"""PIDNet's head: classifiers of the P, I and D branches and their four losses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PIDHead", "edge_targets"]


def edge_targets(label: Tensor, edge_width: int = 4, ignore_index: int = 255) -> Tensor:
    """Semantic edges of a label map, as MMSegmentation's ``GenerateEdge`` transform: pixels
    whose down, left, up-left or up-right neighbour has another (non-ignored) label, dilated by
    an ``edge_width`` square (OpenCV's anchor: ``edge_width // 2`` before, the rest after).

    ``label (N, H, W)`` int64 -> ``(N, H, W)`` int64 in {0, 1}.
    """
    valid = label != ignore_index
    edge = torch.zeros_like(label, dtype=torch.bool)

    def mark(a: tuple[slice, slice], b: tuple[slice, slice]) -> None:
        la, lb = label[(slice(None), *a)], label[(slice(None), *b)]
        hit = (la != lb) & valid[(slice(None), *a)] & valid[(slice(None), *b)]
        edge[(slice(None), *a)] |= hit

    full = slice(None)
    mark((slice(1, None), full), (slice(None, -1), full))  # down
    mark((full, slice(None, -1)), (full, slice(1, None)))  # left
    mark((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None)))  # up-left
    mark((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)))  # up-right
    before, after = edge_width // 2, edge_width - 1 - edge_width // 2
    x = F.pad(edge.unsqueeze(1).float(), (before, after, before, after))
    return F.max_pool2d(x, edge_width, stride=1).squeeze(1).long()


class PIDHead(nn.Module):
    """Classifiers and losses of MMSegmentation's ``PIDHead``.

    ``forward`` takes :class:`~segkit.models.decoders.pidnet.PIDDecoder`'s output: in eval the
    I features -> class logits ``(N, num_classes, H/8, W/8)`` (dropout + ``conv_seg``); in
    training the ``(p, i, d)`` features -> ``{"p", "i", "d"}`` logits (``d``: 1 boundary
    channel).

    Losses (logits upsampled to the label size with ``align_corners``):
    ``p_losses`` on P (MMSeg: class-weighted CE x 0.4), ``i_losses`` on I (OHEM CE),
    ``boundary_losses`` on D against :func:`edge_targets` (boundary BCE x 20), and
    ``boundary_sem_losses`` on I against the labels kept only where
    ``sigmoid(d) > boundary_threshold`` (OHEM CE).

    Args:
        in_channels: width of the P and I features (the decoder's ``channels``).
        boundary_channels: width of the D features (MMSeg: the decoder's ``in_channels // 4``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        boundary_channels: int,
        dropout: float = 0.1,
        p_losses: Sequence[nn.Module] = (),
        i_losses: Sequence[nn.Module] = (),
        boundary_losses: Sequence[nn.Module] = (),
        boundary_sem_losses: Sequence[nn.Module] = (),
        boundary_threshold: float = 0.8,
        edge_width: int = 4,
        align_corners: bool = True,
        ignore_index: int = 255,
        target_key: str = "mask",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)
        self.p_cls_seg = nn.Conv2d(in_channels, num_classes, 1)
        self.d_cls_seg = nn.Conv2d(boundary_channels, 1, 1)
        self.p_losses = nn.ModuleList(p_losses)
        self.i_losses = nn.ModuleList(i_losses)
        self.boundary_losses = nn.ModuleList(boundary_losses)
        self.boundary_sem_losses = nn.ModuleList(boundary_sem_losses)
        self.boundary_threshold = boundary_threshold
        self.edge_width = edge_width
        self.align_corners = align_corners
        self.ignore_index = ignore_index
        self.target_key = target_key
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor | tuple[Tensor, Tensor, Tensor]) -> Tensor | dict[str, Tensor]:
        if isinstance(x, Tensor):
            return self.conv_seg(self.dropout(x))
        x_p, x_i, x_d = x
        return {
            "p": self.p_cls_seg(x_p),
            "i": self.conv_seg(self.dropout(x_i)),
            "d": self.d_cls_seg(x_d),
        }

    def loss(
        self, output: Mapping[str, Tensor], batch: Mapping[str, Any], prefix: str = ""
    ) -> dict[str, Tensor]:
        """``{prefix}p/<loss>``, ``i/``, ``bd/``, ``sem_bd/`` losses (see the class doc)."""
        label = batch[self.target_key]
        size = label.shape[1:]

        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=self.align_corners)

        p, i, d = up(output["p"]), up(output["i"]), up(output["d"])
        edges = edge_targets(label, self.edge_width, self.ignore_index)
        with torch.no_grad():
            sem_bd = torch.where(
                torch.sigmoid(d[:, 0]) > self.boundary_threshold, label, self.ignore_index
            )
        losses: dict[str, Tensor] = {}
        for group, logits, target, fns in (
            ("p", p, label, self.p_losses),
            ("i", i, label, self.i_losses),
            ("bd", d, edges, self.boundary_losses),
            ("sem_bd", i, sem_bd, self.boundary_sem_losses),
        ):
            for fn in fns:
                losses[f"{prefix}{group}/{fn.name}"] = fn(logits, target)
        return losses

    @staticmethod
    def postprocess(scores: Tensor) -> Tensor:
        """Class scores ``(C, H, W)`` -> label map ``(H, W)`` int64."""
        return scores.argmax(dim=0)
