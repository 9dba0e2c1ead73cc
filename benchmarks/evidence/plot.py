"""The K study as a picture: composition against cost and against detail, drawn with Pillow from results.json.

One row of two panels per scale. Left: count fidelity (filled circles) and duplication (open
squares) against time relative to direct inference, with the recipe's time budget dashed. Right:
the same rates against patch FD. Bars are 95% intervals. Grey triangles are headline rows of the
main seed set (direct, hires fix, the recipe) for reference. Deterministic for a given Pillow, so
a test re-draws it from the committed results and compares pixels.

    python -m benchmarks.evidence.plot     # redraw benchmarks/evidence/k_study.png from results.json
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
PANEL_WIDTH, PANEL_HEIGHT = 400, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 46, 14, 26, 38
LEGEND_HEIGHT = 40
COUNT_COLOUR, DUPLICATION_COLOUR, REFERENCE_COLOUR, AXIS_COLOUR = "#1f5fa8", "#c0392b", "#7f7f7f", "#333333"
REFERENCE_ROWS = ("direct", "hires-0.5", "hires-0.7")


def font(size: int = 11) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class Axes:
    """A panel's data-to-pixel mapping; y is a rate in [0, 1]."""

    left: int
    top: int
    x_low: float
    x_high: float

    def x(self, value: float) -> float:
        width = PANEL_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        return self.left + MARGIN_LEFT + (value - self.x_low) / (self.x_high - self.x_low) * width

    def y(self, value: float) -> float:
        height = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
        return self.top + MARGIN_TOP + (1.0 - value) * height


def nice_range(values: list[float], include: tuple[float, ...] = ()) -> tuple[float, float, float]:
    """(low, high, tick step) covering ``values`` with round ticks."""
    low, high = min(*values, *include), max(*values, *include)
    span = (high - low) or 1.0
    step = 10 ** math.floor(math.log10(span / 4))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 6:
            step *= factor
            break
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def setting(row: dict) -> str:
    """Short name of a K-study row: ``0.7`` or ``0.7/0.4`` (K, then the later stages' K)."""
    parts = row["method"].split("-")[1:]
    return "/".join(parts)


def _frame(draw: ImageDraw.ImageDraw, axes: Axes, step: float, title: str, x_title: str) -> None:
    right = axes.left + PANEL_WIDTH - MARGIN_RIGHT
    bottom = axes.y(0.0)
    draw.rectangle((axes.x(axes.x_low), axes.y(1.0), right, bottom), outline=AXIS_COLOUR)
    small = font(10)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.line((axes.x(axes.x_low) - 3, axes.y(tick), axes.x(axes.x_low), axes.y(tick)), fill=AXIS_COLOUR)
        draw.text((axes.x(axes.x_low) - 5, axes.y(tick)), f"{tick:g}", fill=AXIS_COLOUR, font=small, anchor="rm")
    tick = axes.x_low
    while tick <= axes.x_high + step / 1000:
        draw.line((axes.x(tick), bottom, axes.x(tick), bottom + 3), fill=AXIS_COLOUR)
        draw.text((axes.x(tick), bottom + 5), f"{tick:g}", fill=AXIS_COLOUR, font=small, anchor="mt")
        tick += step
    draw.text((axes.left + MARGIN_LEFT, axes.top + 6), title, fill="black", font=font(12))
    draw.text(((axes.x(axes.x_low) + right) / 2, bottom + 20), x_title, fill=AXIS_COLOUR, font=small, anchor="mt")


def _point(draw: ImageDraw.ImageDraw, x: float, y: float, shape: str, colour: str) -> None:
    r = 4
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), outline=colour, width=2)
    else:
        filled = shape == "triangle"
        draw.polygon([(x, y - r - 1), (x - r, y + r), (x + r, y + r)], fill=colour if filled else None, outline=colour)


def _rates(draw: ImageDraw.ImageDraw, axes: Axes, x: float, row: dict, reference: bool, label: str) -> None:
    for metric, shape, colour in (("count_fidelity", "circle", COUNT_COLOUR), ("duplication", "square", DUPLICATION_COLOUR)):
        estimate = row[metric]
        if reference:
            shape, colour = ("triangle" if metric == "count_fidelity" else "hollow-triangle"), REFERENCE_COLOUR
        px = axes.x(x)
        draw.line((px, axes.y(estimate["low"]), px, axes.y(estimate["high"])), fill=colour)
        _point(draw, px, axes.y(estimate["value"]), shape, colour)
    draw.text((axes.x(x) + 6, axes.y(row["count_fidelity"]["value"]) - 2), label,
              fill=REFERENCE_COLOUR if reference else COUNT_COLOUR, font=font(10), anchor="ls")


def _panel(draw: ImageDraw.ImageDraw, left: int, top: int, study: dict, main: dict, budget: float, area: str,
           by_time: bool) -> None:
    rows = [row for row in study["rows"] if row["method"] != "real"]
    references = [row for row in main["rows"] if row["method"] in REFERENCE_ROWS]
    if by_time:
        value = lambda row: row["relative_time"]  # noqa: E731
        low, high, step = nice_range([value(r) for r in rows + references], include=(0.0, budget))
        title, x_title = f"{area} area: composition vs time", "time relative to direct inference"
    else:
        value = lambda row: row["patch_fd"]["value"]  # noqa: E731
        bounds = [v for r in rows + references for v in (r["patch_fd"]["low"], r["patch_fd"]["high"])]
        low, high, step = nice_range(bounds)
        title, x_title = f"{area} area: composition vs detail", "patch FD (lower: closer to real)"
    axes = Axes(left, top, low, high)
    _frame(draw, axes, step, title, x_title)
    if by_time:
        for y in range(int(axes.y(1.0)), int(axes.y(0.0)), 6):
            draw.line((axes.x(budget), y, axes.x(budget), y + 3), fill=AXIS_COLOUR)
    for row in references:
        if not by_time:
            draw.line((axes.x(row["patch_fd"]["low"]), axes.y(row["count_fidelity"]["value"]),
                       axes.x(row["patch_fd"]["high"]), axes.y(row["count_fidelity"]["value"])), fill=REFERENCE_COLOUR)
        _rates(draw, axes, value(row), row, True, row["method"].replace("-", " "))
    for row in rows:
        if not by_time:
            draw.line((axes.x(row["patch_fd"]["low"]), axes.y(row["count_fidelity"]["value"]),
                       axes.x(row["patch_fd"]["high"]), axes.y(row["count_fidelity"]["value"])), fill=COUNT_COLOUR)
        _rates(draw, axes, value(row), row, False, setting(row))


def k_study_plot(results: dict) -> Image.Image:
    """The K study of ``results`` (the evaluation's JSON) as one picture."""
    tables = {table["name"]: table for table in results["tables"]}
    budgets = dict(zip(("4x", "16x"), results["settings"]["time_budget"]))
    areas = [area for area in ("4x", "16x") if f"k-study-{area}" in tables]
    canvas = Image.new("RGB", (2 * PANEL_WIDTH, len(areas) * PANEL_HEIGHT + LEGEND_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    for index, area in enumerate(areas):
        for column, by_time in enumerate((True, False)):
            _panel(draw, column * PANEL_WIDTH, index * PANEL_HEIGHT, tables[f"k-study-{area}"], tables[f"main-{area}"],
                   budgets[area], area, by_time)
    n = tables[f"k-study-{areas[0]}"]["n"]
    y = len(areas) * PANEL_HEIGHT + LEGEND_HEIGHT // 4
    x = 12
    for shape, colour, text in (("circle", COUNT_COLOUR, "count fidelity (higher is better)"),
                                ("square", DUPLICATION_COLOUR, "duplication (lower is better)"),
                                ("triangle", REFERENCE_COLOUR, "main-set rows (hires fix, direct)")):
        _point(draw, x + 4, y, shape, colour)
        draw.text((x + 12, y), text, fill=AXIS_COLOUR, font=font(10), anchor="lm")
        x += 12 + int(draw.textlength(text, font=font(10))) + 18
    draw.text((12, y + LEGEND_HEIGHT // 2), f"K study: N = {n} per point; labels: K or K/later K; bars: 95% intervals; "
              "dashed: time budget", fill=AXIS_COLOUR, font=font(10), anchor="lm")
    return canvas


def main() -> int:
    results = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    k_study_plot(results).save(HERE / "k_study.png")
    print(f"drew {HERE / 'k_study.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
