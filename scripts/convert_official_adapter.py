"""Convert the official Self-Cascade SDXL upsamplers (upsampler_only.pth) to this pack's .safetensors.

    python scripts/convert_official_adapter.py upsampler_only.pth models/upsampler_adapters/selfcascade_sdxl_official.safetensors

Runs without ComfyUI (torch and safetensors only). The .pth is read with
``torch.load(weights_only=True)``; every key and shape is checked, and the output is written
atomically. Exit status 1 with a message naming the problem when the file does not fit.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root holds the ``adapters`` package

from adapters.fileformat import AdapterError, convert_official_adapter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the official upsampler_only.pth")
    parser.add_argument("destination", type=Path, help="the .safetensors file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace the destination if it exists")
    args = parser.parse_args(argv)
    try:
        adapter = convert_official_adapter(args.source, args.destination, args.overwrite)
    except AdapterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.destination}: {adapter.parameter_count():,} parameters\n{adapter.spec.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
