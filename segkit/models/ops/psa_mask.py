"""PSANet's point-wise spatial attention masks (Zhao et al., ECCV 2018) in plain PyTorch: the
``PSAMask`` op that MMCV ships compiled, written as one gather."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["psa_mask"]


def psa_mask(mask: Tensor, psa_type: str, mask_size: Sequence[int]) -> Tensor:
    """Spread per-position attention windows over the whole map.

    ``mask (N, Hm*Wm, H, W)`` holds, for every position ``p = (h, w)``, a ``Hm x Wm`` window of
    weights centred on ``p``: window entry ``(a, b)`` is the weight between ``p`` and
    ``q = (h + a - (Hm - 1) // 2, w + b - (Wm - 1) // 2)``. Entries whose ``q`` is off the map
    are dropped; pairs the window does not reach get 0.

    Returns ``(N, H*W, H, W)``:

    - ``"collect"``: ``out[n, q, h, w]`` = weight of ``q`` in ``p``'s window (``p`` collects
      from ``q``).
    - ``"distribute"``: ``out[n, p, i, j]`` = weight of ``q = (i, j)`` in ``p``'s window (``p``
      distributes to ``q``), i.e. the transpose over the two position axes.
    """
    n, c, h, w = mask.shape
    mh, mw = mask_size
    if c != mh * mw:
        raise ValueError(f"psa_mask: {c} channels for a {mh}x{mw} mask")
    if psa_type not in ("collect", "distribute"):
        raise ValueError(f"psa_type must be 'collect' or 'distribute', got {psa_type!r}")
    dev = mask.device
    # window index of target (i, j) seen from source (y, x), broadcast as (i, j, y, x)
    ih = (mh - 1) // 2 + torch.arange(h, device=dev).view(h, 1, 1, 1)
    ih = ih - torch.arange(h, device=dev).view(1, 1, h, 1)
    iw = (mw - 1) // 2 + torch.arange(w, device=dev).view(1, w, 1, 1)
    iw = iw - torch.arange(w, device=dev).view(1, 1, 1, w)
    valid = (ih >= 0) & (ih < mh) & (iw >= 0) & (iw < mw)  # (h, w, h, w) after broadcasting
    ys = torch.arange(h, device=dev).view(1, 1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, 1, w)
    windows = mask.reshape(n, mh, mw, h, w)
    out = windows[:, ih.clamp(0, mh - 1), iw.clamp(0, mw - 1), ys, xs]  # (N, i, j, y, x)
    out = torch.where(valid, out, out.new_zeros(()))
    out = out.reshape(n, h * w, h * w)  # [target q, source p]
    if psa_type == "distribute":
        out = out.transpose(1, 2)  # [source p, target q]
    return out.reshape(n, h * w, h, w)
