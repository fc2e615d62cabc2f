"""Weighting the losses of several heads (segmentation + depth) against each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["UncertaintyWeighting", "head_of"]


def head_of(loss_name: str) -> str:
    """The head a loss belongs to: ``"seg/loss_ce"`` -> ``seg``; auxiliary heads' losses
    (``"aux.fcn/loss_ce"``) count for ``seg``."""
    head = loss_name.split("/", 1)[0]
    return "seg" if head.startswith("aux.") else head


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty task weighting (Kendall, Gal and Cipolla, CVPR 2018): each head's
    summed loss ``L_h`` becomes ``exp(-s_h) * L_h + s_h`` with a learned ``s_h = log sigma_h^2``,
    so no hand-tuned ratio between, e.g., cross-entropy and SILog is needed.

    Args:
        heads: the names of the heads to weight (their losses are named ``<head>/...``).
        init: initial ``s_h`` (0: weight 1).

    ``forward(losses) -> losses``: every loss of head ``h`` scaled by ``exp(-s_h)``, plus one
    ``<h>/uncertainty`` term ``s_h`` each (the regulariser), so the sum is the objective.
    """

    def __init__(self, heads: Sequence[str], init: float = 0.0) -> None:
        super().__init__()
        self.log_vars = nn.ParameterDict(
            {h: nn.Parameter(torch.tensor(float(init))) for h in heads}
        )

    def forward(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for name, value in losses.items():
            head = head_of(name)
            s = self.log_vars.get(head)
            out[name] = value if s is None else torch.exp(-s) * value
        for head, s in self.log_vars.items():
            out[f"{head}/uncertainty"] = s
        return out

    def weights(self) -> dict[str, float]:
        """The current weight ``exp(-s_h)`` of each head."""
        return {h: float(torch.exp(-s.detach())) for h, s in self.log_vars.items()}
