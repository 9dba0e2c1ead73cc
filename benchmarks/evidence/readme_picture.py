"""The README's first picture, cut from the committed sample sheet: the demo model's native sample, the same
prompt sampled directly at 4x the side, and the cascade of the native sample to that size.

Three rows of ``samples.png`` (written by ``evaluate.write_sample_sheet``: a 160 px label column, then
128 px tiles 4 px apart, one row per method and size, first the native 32 px row) with readable labels.
Only pixels of the committed evidence are shown; nothing is sampled here.

    python -m benchmarks.evidence.readme_picture   # redraw docs/images/direct_vs_cascade.png
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from .plot import font

HERE = Path(__file__).resolve().parent
SHEET = HERE / "samples.png"
PICTURE = HERE.parent.parent / "docs" / "images" / "direct_vs_cascade.png"
SHEET_LABEL, TILE, GAP = 160, 128, 4  # evaluate.write_sample_sheet's layout
ROWS = (  # (row of samples.png, label): native 32, direct 128 and the 16x recipe's cascade 128 (see results.md)
    (0, "native sample, 32x32"),
    (10, "direct sampling at 128x128"),
    (15, "Self-Cascade 32 > 64 > 128"),
)
LABEL = 190


def picture(sheet: Image.Image) -> Image.Image:
    columns = (sheet.width - SHEET_LABEL + GAP) // (TILE + GAP)
    width = LABEL + columns * (TILE + GAP) - GAP
    canvas = Image.new("RGB", (width, len(ROWS) * (TILE + GAP) - GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for position, (row, label) in enumerate(ROWS):
        top = row * (TILE + GAP)
        strip = sheet.crop((SHEET_LABEL, top, SHEET_LABEL + columns * (TILE + GAP) - GAP, top + TILE))
        canvas.paste(strip, (LABEL, position * (TILE + GAP)))
        draw.text((6, position * (TILE + GAP) + TILE // 2), label, fill="black", font=font(13), anchor="lm")
    return canvas


def main() -> int:
    picture(Image.open(SHEET).convert("RGB")).save(PICTURE, optimize=True)
    print(f"drew {PICTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
