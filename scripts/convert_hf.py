"""Convert a Hugging Face transformers segmentation checkpoint into a segkit checkpoint.

    python scripts/convert_hf.py SRC DST --model NAME [--data DATA] [OVERRIDE ...]

SRC is a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``) or a weights file;
NAME is a conversion spec, ``conf/convert/hf/NAME.yaml`` (``--list`` prints them): SegFormer,
UperNet, Mask2Former, MaskFormer, DPT, BEiT and Depth Anything. Class names come from ``--data``,
else from the folder's ``config.json`` ``id2label``, else from the spec.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from convert_mmseg import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, source="hf")


if __name__ == "__main__":
    raise SystemExit(main())
