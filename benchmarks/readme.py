"""The README's figures, rendered from the committed result files: one source of truth.

Every measured number in ``README.md`` sits in a generated block,

    <!-- generated:NAME -->
    ...rendered text...
    <!-- /generated:NAME -->

and ``BLOCKS`` maps NAME to the function that renders it from its result file (JSON under
``benchmarks/``). ``python -m benchmarks.readme`` (from the repo root, any Python: JSON and text
only, no torch or ComfyUI) rewrites the blocks; ``--check`` exits 1 when the README differs from
what the results say, which ``tests/unit/test_readme_generated.py`` also asserts. A rerun that
changes a result therefore changes the README in the same commit.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.DOTALL)

Renderer = Callable[[], str]
BLOCKS: dict[str, Renderer] = {}


def block(name: str) -> Callable[[Renderer], Renderer]:
    """Register ``function`` as the renderer of README block ``name``."""
    def register(function: Renderer) -> Renderer:
        BLOCKS[name] = function
        return function
    return register


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def ratio(value: float) -> str:
    return f"{value:.3f}"


# performance: the tiny-model CPU smoke and the full-size operation counts

SMOKE_CHECKS = ("cascade wall / its UNet calls (floor)", "… with its UNet time set to the graph's",
                "high-res stages, lite / tuning-free", "high-res stages, official-sdxl / tuning-free")
SMOKE_LABELS = {"… with its UNet time set to the graph's": "cascade / core-node graph, UNet time equalised"}


@block("performance-cpu-smoke")
def cpu_smoke() -> str:
    run = load(RESULTS / "cpu-smoke.json")
    info = run["info"]
    lines = [f"CPU smoke, tiny random-weight models ({info['date']}, {info['machine']}, {info['device']}, "
             f"`{info['command']}`):", "",
             "| model | px | comparison | ratio | budget |", "|---|---|---|---:|---:|"]
    for scenario in run["scenarios"]:
        px = "→".join(map(str, scenario["sizes"]))
        for check in scenario["comparisons"]:
            if check["check"] not in SMOKE_CHECKS:
                continue
            budget = "—" if check["budget"] is None else \
                f"≤ {check['budget']:g} {'✓' if check['verdict'] == 'ok' else '✗ (tiny models)'}"
            lines.append(f"| {scenario['family']} | {px} | {SMOKE_LABELS.get(check['check'], check['check'])} | "
                         f"{ratio(check['ratio'])} | {budget} |")
    return "\n".join(lines) + "\n"


@block("performance-flops")
def full_size_flops() -> str:
    counts = load(RESULTS / "full-size-flops.json")["flops"]
    steps, stage_steps = counts[0]["steps"], counts[0]["stage_steps"]
    lines = [f"Full-size SD1.5 and SDXL UNets, operations counted on the meta device (not timed; {steps} base "
             f"steps, {stage_steps} per stage; `python benchmarks/run.py --gpu --device cpu --sections flops`):", "",
             "| model | px | lite / tuning-free | official / tuning-free | cascade / direct | cascade / hires fix |",
             "|---|---|---:|---:|---:|---:|"]
    for count in counts:
        adapters = count["adapter_ratio"]
        cells = [ratio(adapters[v]) if v in adapters else "—" for v in ("lite", "official-sdxl")]
        lines.append(f"| {count['family']} | {'→'.join(map(str, count['sizes']))} | {' | '.join(cells)} | "
                     f"{ratio(count['cascade_over_direct'])} | {ratio(count['cascade_over_hires'])} |")
    sdxl = next(c for c in counts if c["family"] == "sdxl" and len(c["sizes"]) == 2)["adapter_ratio"]
    lines += ["", "On tiny models the adapter's extra encoder pass over the pivot costs as much as the UNet itself, so "
              f"the 1.15x adapter budget is missed there; counted at full size (SDXL 1024→2048) it is "
              f"{sdxl['lite']:.2f}x (lite) and {sdxl['official-sdxl']:.2f}x (official)."]
    return "\n".join(lines) + "\n"


@block("training-throughput")
def training_throughput() -> str:
    run = load(RESULTS / "cpu-smoke.json")
    parts = [f"{result['variant']} {result['steps_per_second']:.1f} steps/s" for result in run["training"]]
    first = run["training"][0]
    return (f"What we measured (`{run['info']['command']}`, this repo's 2-core CPU, tiny {first['family']}-shaped "
            f"model, {first['resolution']} px crops, batch {first['batch']}, {first['precision']}): "
            f"{', '.join(parts)}.\n")


# what the first command costs

@block("provisioning")
def provisioning() -> str:
    run = load(RESULTS / "provisioning.json")
    cache = "an empty pip cache" if run["pip_cache_bytes_before"] == 0 else "a warm pip cache"
    return (f"The first run of either command provisions a ComfyUI 0.3.75 test host into `.host/` (git-ignored; "
            f"`scripts/provision_host.py`): about {round(run['seconds'] / 60)} minutes and "
            f"{run['host_bytes'] / 1e9:.1f} GB here ({run['seconds']:.0f} s, {run['host_bytes'] / 1e9:.2f} GB with "
            f"{cache}, {run['machine']}, Python {run['python']}, {run['date']}; `{run['measured_by']}`). "
            "Later runs reuse it.\n")


def render(text: str) -> str:
    """``text`` with every generated block re-rendered; an unknown block name is an error."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"README block '{name}' has no renderer in benchmarks/readme.py")
        return f"{match.group(1)}{BLOCKS[name]()}{match.group(4)}"
    return BLOCK.sub(replace, text)


def block_names(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    rendered = render(current)
    if args.check:
        if rendered != current:
            print("README.md is behind the result files: run python -m benchmarks.readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(rendered, encoding="utf-8")
    print(f"rendered {len(block_names(rendered))} blocks into {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
