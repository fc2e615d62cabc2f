"""Convert an MMSegmentation checkpoint into a segkit checkpoint that ``segkit.load`` opens.

    python scripts/convert_mmseg.py SRC DST --model NAME [--data DATA] [OVERRIDE ...]

NAME is a conversion spec, ``conf/convert/mmseg/NAME.yaml`` (usually the segkit model config of
the same name); ``--list`` prints them. Class names and palette come from ``--data`` (a
``conf/data`` name), else from the checkpoint's ``meta.dataset_meta``, else from the spec.
OVERRIDEs are Hydra overrides of the model config (e.g. ``model.decoder.channels=768``).
The file is read with ``weights_only=True``: a checkpoint holding code is refused.
"""

from __future__ import annotations

import argparse
import sys

from segkit.checkpoints.convert import ConversionError, available_specs, convert_checkpoint


def main(argv: list[str] | None = None, source: str = "mmseg") -> int:
    what = "an MMSegmentation" if source == "mmseg" else "a transformers"
    parser = argparse.ArgumentParser(description=f"Convert {what} checkpoint to segkit")
    parser.add_argument("src", nargs="?", help="checkpoint file (or transformers folder)")
    parser.add_argument("dst", nargs="?", help="segkit checkpoint to write")
    parser.add_argument("--model", help="conversion spec name (see --list)")
    parser.add_argument("--data", help="conf/data name for class names and palette")
    parser.add_argument("--list", action="store_true", help="print the available specs")
    args, overrides = parser.parse_known_args(argv)
    if args.list:
        print("\n".join(available_specs(source)))
        return 0
    if not (args.src and args.dst and args.model):
        parser.error("SRC, DST and --model are required")
    try:
        path = convert_checkpoint(args.src, args.dst, args.model, source, args.data, overrides)
    except (ConversionError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path} (open it with segkit.load)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
