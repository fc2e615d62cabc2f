"""``scripts/make_mmseg_fixtures.py`` for MMSegmentation's mask-classification heads
(Mask2Former, MaskFormer, K-Net), which read their configs by attribute
(``transformer_decoder.layer_cfg...``): the plain dicts the generator builds from are turned
back into mmengine ``ConfigDict`` s. Nothing else changes (no op is replaced: mmcv's
``MultiScaleDeformableAttention`` runs its own pure-PyTorch path on CPU)::

    /work/mmseg-venv/bin/python scripts/make_mmseg_fixtures_maskcls.py NAME [...] [--count ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_mmseg_fixtures as base

_plain = base._plain


def _plain_config(node):
    from mmengine.config import ConfigDict

    out = _plain(node)
    return ConfigDict(out) if isinstance(out, dict) else out


if __name__ == "__main__":
    base._plain = _plain_config
    base.main()
