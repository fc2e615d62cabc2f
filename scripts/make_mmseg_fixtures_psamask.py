"""Run ``make_mmseg_fixtures.py`` with MMCV's compiled ``PSAMask`` replaced by a loop reference.

The MMSegmentation reference environment has mmcv-lite, without ``mmcv._ext``, so PSANet's
``PSAHead`` cannot run as installed. This helper swaps the two kernels that
``mmcv.ops.psa_mask`` calls (``ext_module.psamask_forward``) for a plain Python transcription of
MMCV's CPU/CUDA kernels (``mmcv/ops/csrc/pytorch/cpu/psamask.cpp``,
``csrc/common/cuda/psamask_cuda_kernel.cuh``): the same loops, bounds and flat index arithmetic,
element by element, written into the same zero-initialised buffer. It shares no code with
segkit's vectorised ``segkit.models.ops.psa_mask``, which the parity test then checks against it.
Forward only (fixtures run under ``torch.no_grad``); slow, so keep the maps small.

    /work/mmseg-venv/bin/python scripts/make_mmseg_fixtures_psamask.py psanet_r50
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_mmseg_fixtures


def psamask_forward(
    mask: torch.Tensor,
    buffer: torch.Tensor,
    psa_type: int,
    num_: int,
    h_feature: int,
    w_feature: int,
    h_mask: int,
    w_mask: int,
    half_h_mask: int,
    half_w_mask: int,
) -> None:
    """MMCV's ``psamask_{collect,distribute}_forward`` (psa_type 0 / 1), loop for loop."""
    src = mask.contiguous().view(-1).tolist()
    dst = buffer.view(-1)
    hw = h_feature * w_feature
    for n in range(num_):
        for h in range(h_feature):
            for w in range(w_feature):
                hstart = max(0, half_h_mask - h)
                hend = min(h_mask, h_feature + half_h_mask - h)
                wstart = max(0, half_w_mask - w)
                wend = min(w_mask, w_feature + half_w_mask - w)
                for hidx in range(hstart, hend):
                    for widx in range(wstart, wend):
                        value = src[
                            ((n * h_mask * w_mask + hidx * w_mask + widx) * h_feature + h)
                            * w_feature
                            + w
                        ]
                        other = (hidx + h - half_h_mask) * w_feature + (widx + w - half_w_mask)
                        here = h * w_feature + w
                        if psa_type == 0:  # collect
                            dst[(n * hw + other) * hw + here] = value
                        else:  # distribute
                            dst[(n * hw + here) * hw + other] = value


def psamask_backward(*args, **kwargs) -> None:
    raise NotImplementedError("the PSAMask loop reference is forward-only")


def install() -> None:
    """Import MMSegmentation (with the mmcv-lite shim) and patch ``mmcv.ops.psa_mask``."""
    make_mmseg_fixtures._import_mmseg()
    import mmcv.ops.psa_mask as psa

    psa.ext_module = types.SimpleNamespace(
        psamask_forward=psamask_forward, psamask_backward=psamask_backward
    )


if __name__ == "__main__":
    install()
    make_mmseg_fixtures.main()
