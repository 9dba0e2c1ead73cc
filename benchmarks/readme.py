"""The README's and docs/' figures, rendered from the committed result files: one source of truth.

Every measured number in ``README.md`` and in the pages under ``docs/`` (``documents()``) sits in a
generated block,

    <!-- generated:NAME -->
    ...rendered text...
    <!-- /generated:NAME -->

and ``BLOCKS`` maps NAME to the function that renders it from its result file (JSON under
``benchmarks/``); each block lives in one document. The README keeps one sentence per area with
the headline figure and a link; the long tables live in ``docs/evidence.md``,
``docs/upscale-evidence.md`` and ``docs/performance.md``. Renderers write links from the repository
root; a page under ``docs/`` gets them made relative to itself. ``python -m benchmarks.readme``
(from the repo root, any Python: JSON and text only, no torch or ComfyUI) rewrites the blocks;
``--check`` exits 1 when a document differs from what the results say, which
``tests/unit/test_readme_generated.py`` also asserts. A rerun that changes a result therefore
changes the documents in the same commit.

Outside the blocks nothing may look measured: ``unlisted_figures`` finds every decimal number,
percentage, count with thousands separators, and number with a unit of time, memory or throughput
in a document's prose and tables (code, link targets and comments excepted; a decimal glued to a
name such as SD1.5 or GPL-3.0, and versions such as 0.3.75, are names), and each must sit inside a
phrase of ``NOT_MEASURED``, which says what it is instead (a setting, a default, a limit, the
paper's number, a version, a count the code fixes and a test pins). A measured figure belongs in a
block.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Callable

from . import dit_cost_report
from .evidence import flow_report
from .evidence import report as evidence

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
RESULTS = REPO / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.DOTALL)
ROOT_LINK = re.compile(r"(\]\()(?![a-z]+:|#|/|\.\./)")  # a markdown link target written from the repository root


def documents() -> list[Path]:
    """The README and every page under docs/: the files whose figures are rendered and checked."""
    return [README, *sorted(DOCS.glob("*.md"))]

Renderer = Callable[[], str]
BLOCKS: dict[str, Renderer] = {}


def block(name: str) -> Callable[[Renderer], Renderer]:
    """Register ``function`` as the renderer of block ``name`` (in the README or a page of docs/)."""
    def register(function: Renderer) -> Renderer:
        BLOCKS[name] = function
        return function
    return register


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def ratio(value: float) -> str:
    return f"{value:.3f}"


# evidence: the demo model, its evaluation (benchmarks/evidence/results.json), the recipes it chose

@block("evidence-model")
def evidence_model() -> str:
    lines = (REPO / "models" / "demo" / "train_log.csv").read_text(encoding="utf-8").splitlines()
    config = json.loads(lines[0].lstrip("# "))  # the first line is the run's settings, then a CSV with a header
    last = dict(zip(lines[1].split(","), lines[-1].split(",")))
    return (f"Its trainer is `benchmarks/evidence/train_base_model.py` (seed {config['seed']}, {config['steps']} steps of "
            f"batch {config['batch']}, {float(last['cpu_seconds']) / 60:.1f} CPU-minutes on one thread); weights and "
            "loss log are in `models/demo/`.\n")


@block("evidence-tables")
def evidence_tables() -> str:
    return evidence.evidence_tables(evidence.load())


@block("evidence-k-study")
def evidence_k_study() -> str:
    return evidence.evidence_k_study(evidence.load())


@block("evidence-reading")
def evidence_reading() -> str:
    return evidence.evidence_reading(evidence.load())


@block("recipes-measured")
def recipes_measured() -> str:
    return evidence.recipes_measured(evidence.load())


@block("training-adapters")
def training_adapters() -> str:
    return evidence.training_adapters(evidence.load())


@block("readme-evidence")
def readme_evidence() -> str:
    """The README's headline: 16x area, direct sampling against the cascade and hires fix, and its caveats."""
    results = evidence.load()
    tables = evidence.tables_by_name(results)
    table = tables["main-16x"]
    method = results["recipes"]["16x"]["method"]
    ours, direct, hires = (evidence.row(table, m) for m in (method, "direct", "hires-0.5"))
    k, later_k = evidence.ks(method)
    default = f"cascade-{results['settings']['k']:g}"
    return (f"On the pack's demo model at 16x area (32² → {table['size']}², N = {table['n']} per row), sampling directly "
            f"at the target has duplication (the share of images with more discs than prompted) "
            f"{evidence.value(direct['duplication'], 'duplication')}. The cascade with the K study's choice (K {k}, then "
            f"`later_k` {later_k}) has count fidelity (the share with exactly the prompted number) "
            f"{evidence.value(ours['count_fidelity'], 'count_fidelity')} against hires fix's "
            f"{evidence.value(hires['count_fidelity'], 'count_fidelity')} (denoise 0.5), at {ours['relative_time']:.2f}× "
            f"and {hires['relative_time']:.2f}× direct's CPU time; on disjoint replication seeds its composition is "
            f"{evidence.composition_against_hires(tables['replication-16x'], method)}, and with the node's default K "
            f"{results['settings']['k']:g} in every stage it is {evidence.composition_against_hires(table, default)}. "
            "The tables, the K study and what they mean: [docs/evidence.md](docs/evidence.md).\n")


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


@block("readme-performance")
def readme_performance() -> str:
    counts = load(RESULTS / "full-size-flops.json")["flops"]
    sdxl = next(c for c in counts if c["family"] == "sdxl" and c["sizes"] == [1024, 2048])
    adapters = sdxl["adapter_ratio"]
    return (f"Counted at full size (SDXL 1024² → 2048², {sdxl['steps']} base steps, operations on the meta device), the "
            f"cascade costs {sdxl['cascade_over_direct']:.2f}x the operations of sampling directly at the target, and a "
            f"stage with an adapter {adapters['lite']:.2f}x (lite) or {adapters['official-sdxl']:.2f}x (official) a "
            "tuning-free stage; timings so far are from CPUs only: [docs/performance.md](docs/performance.md).\n")


@block("training-throughput")
def training_throughput() -> str:
    run = load(RESULTS / "cpu-smoke.json")
    parts = [f"{result['variant']} {result['steps_per_second']:.1f} steps/s" for result in run["training"]]
    first = run["training"][0]
    return (f"What we measured (`{run['info']['command']}`, this repo's 2-core CPU, tiny {first['family']}-shaped "
            f"model, {first['resolution']} px crops, batch {first['batch']}, {first['precision']}): "
            f"{', '.join(parts)}.\n")


# the memory plan: ComfyUI's own estimates per stage (benchmarks/results/memory-plan.json)

@block("performance-memory")
def memory_plan() -> str:
    run = load(RESULTS / "memory-plan.json")
    info, rows = run["info"], run["rows"]
    formula = ("its flash-attention formula" if info["flash_attention_formula"] else
               "its formula for devices without flash attention (a CPU's, with fp32 weights); on an NVIDIA GPU with "
               "PyTorch attention ComfyUI uses a smaller formula and half precision, so there these are upper bounds")
    lines = [f"ComfyUI's own estimates (`{info['command']}`) on `{info['device']}`, by {formula}. Full-size models on "
             "the meta device (no weights): the sampling figure is `estimate_memory` for one stage's latent (batch 1, "
             "doubled for CFG as the host's sampler does), weights are the model's size at the dtype ComfyUI picks "
             "for this device, the VAE decode is the family VAE's `memory_used_decode` of that latent. The plan "
             "panel shows the same figures per stage for the connected model against the free memory.", "",
             "| model | px | sampling GiB | weights GiB (dtype) | VAE decode GiB |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['side']}² | {row['sampling_bytes'] / 2**30:.2f} | "
                     f"{row['weights_bytes'] / 2**30:.2f} ({row['dtype']}) | {row['vae_decode_bytes'] / 2**30:.2f} |")
    return "\n".join(lines) + "\n"


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


# which hosts the suite has run on

MAX_NAMED_FAILURES = 3  # a table cell names this many of a run's failing tests


@block("compatibility")
def compatibility() -> str:
    runs = load(RESULTS / "compatibility.json")["runs"]
    lines = ["| ComfyUI | frontend | what ran | result | date |", "|---|---|---|---|---|"]
    for run in runs:
        result = f"{run['passed']} passed, {run['failed']} failed, {run['errors']} errors, {run['skipped']} skipped"
        if run["not_passed"]:
            result += ": " + ", ".join(f"`{name.rsplit('.', 1)[-1]}`" for name in run["not_passed"][:MAX_NAMED_FAILURES])
        lines.append(f"| {run['host']} | {run['frontend']} | {run['what']}, commit `{run['commit']}` "
                     f"(`{run['measured_by']}`) | {result} | {run['date']} |")
    return "\n".join(lines) + "\n"


# Self-Cascade Upscale on the demo model: what it keeps of the input, first-stage K, colour

UPSCALE_RESULTS = REPO / "benchmarks" / "evidence" / "upscale_results.json"
KEEPS = 0.95  # a K "keeps the composition" when at least this share of outputs has the input's disc count
COLOUR_CAST_LEVELS = 2.0  # a mean channel shift above this (of 255) would be drift worth a colour-match option


def _upscale_rows() -> tuple[dict, dict]:
    run = load(UPSCALE_RESULTS)
    return run, {(row["scale"], row["method"], row["k"]): row for row in run["rows"]}


@block("upscale-evidence")
def upscale_evidence() -> str:
    run, rows = _upscale_rows()
    s, k = run["settings"], run["settings"]["default_k"]
    lines = [f"Demo model, N = {s['n']} real {32}x{32} renders of one to three discs per row, prompt = the input's "
             f"count, {s['steps']} {s['sampler']} steps; 95 % intervals (Wilson, bootstrap over images); "
             "`python benchmarks/evidence/upscale_evaluate.py` ([all rows](benchmarks/evidence/upscale_results.md)). "
             "Count kept: the output has exactly the input's number of discs; centre shift: distance from each "
             "input disc to the nearest object of the output, in input pixels; patch FD and HF ratio (fine-detail "
             "power, 1 = as much as real) against the same scenes rendered at the target size.", "",
             "| Area | Method | Count kept ↑ | Centre shift (px) ↓ | Patch FD ↓ | HF ratio (→1) | CPU s/image |",
             "|---|---|---|---|---|---|---:|"]
    for scale in (2, 4):
        for method, row_k in (("bicubic", None), ("hires fix", None), ("upscale", k), ("upscale + adapter", k)):
            row = rows[(scale, method, row_k)]
            lines.append(f"| {scale * scale}x | {row['label']} | {evidence.interval(row['count_kept'], 3)} "
                         f"| {evidence.interval(row['centre_shift_px'], 2)} | {evidence.interval(row['patch_fd'], 1)} "
                         f"| {evidence.interval(row['hf_ratio'], 3)} | {row['seconds_per_image']:.2f} |")
    lines += ["", upscale_headline(run, rows)]
    return "\n".join(lines) + "\n"


def upscale_headline(run: dict, rows: dict) -> str:
    """At 16x area: the count kept, the centres' shift, patch FD and CPU time against bicubic and hires fix."""
    k = run["settings"]["default_k"]
    ours, bicubic, hires, tuned = (rows[(4, m, mk)] for m, mk in (("upscale", k), ("bicubic", None),
                                                                  ("hires fix", None), ("upscale + adapter", k)))
    return (f"At 16x area, Self-Cascade Upscale (K {k}) keeps the input's count in "
            f"{ours['count_kept']['value']:.0%} of images (bicubic {bicubic['count_kept']['value']:.0%}, one hires-fix "
            f"pass {hires['count_kept']['value']:.0%}), moves disc centres by {ours['centre_shift_px']['value']:.2f} "
            f"input px on average (bicubic {bicubic['centre_shift_px']['value']:.2f}), and brings the patch FD from "
            f"bicubic's {bicubic['patch_fd']['value']:.0f} to {ours['patch_fd']['value']:.0f} (hires fix "
            f"{hires['patch_fd']['value']:.0f}; with the lite adapter {tuned['patch_fd']['value']:.0f}) in "
            f"{ours['seconds_per_image'] / hires['seconds_per_image']:.2f}x the hires-fix pass's CPU time.")


@block("readme-upscale")
def readme_upscale() -> str:
    run, rows = _upscale_rows()
    return (f"Measured on the demo model (real renders of discs at 32x32, N = {run['settings']['n']} per row): "
            + upscale_headline(run, rows) + " Every row, the first-stage K and colour: "
            "[docs/upscale-evidence.md](docs/upscale-evidence.md).\n")


@block("upscale-k")
def upscale_k() -> str:
    run, rows = _upscale_rows()
    ks = sorted({row["k"] for row in run["rows"] if row["method"] == "upscale"})
    lines = ["| First-stage `k` | 4x: count kept | 4x: extra objects | 4x: centre shift (px) | 16x: count kept "
             "| 16x: extra objects | 16x: centre shift (px) |", "|---|---|---|---|---|---|---|"]
    keeps_everywhere, keeps_at_4x_only, repaints = [], [], []
    for k in ks:
        cells = []
        for scale in (2, 4):
            row = rows.get((scale, "upscale", k))
            cells += [evidence.interval(row[name], 3 if name != "centre_shift_px" else 2) if row else "–"
                      for name in ("count_kept", "extra_objects", "centre_shift_px")]
        lines.append(f"| {k:.1f} | {' | '.join(cells)} |")
        kept = {scale: rows[(scale, "upscale", k)]["count_kept"]["value"] for scale in (2, 4) if (scale, "upscale", k) in rows}
        if all(value >= KEEPS for value in kept.values()) and len(kept) == 2:
            keeps_everywhere.append(k)
        elif kept.get(2, 0.0) >= KEEPS:
            keeps_at_4x_only.append(k)
        else:
            repaints.append(k)
    said = [f"K {', '.join(f'{k:.1f}' for k in keeps_everywhere)} kept the count in at least {KEEPS:.0%} of images "
            "at both scales (composition kept)"] if keeps_everywhere else []
    said += [f"K {k:.1f} kept it at 4x but added objects at 16x "
             f"({rows[(4, 'upscale', k)]['extra_objects']['value']:.0%} of images)" for k in keeps_at_4x_only]
    said += [f"K {k:.1f} repaints: the count survived in {rows[(2, 'upscale', k)]['count_kept']['value']:.0%} of images "
             "at 4x" for k in repaints if (2, "upscale", k) in rows]
    lines += ["", "On the demo model " + "; ".join(said) + "."]
    return "\n".join(lines) + "\n"


@block("upscale-colour")
def upscale_colour() -> str:
    run, rows = _upscale_rows()
    k = run["settings"]["default_k"]
    ours, bicubic, hires, tuned = (rows[(4, m, mk)] for m, mk in (("upscale", k), ("bicubic", None),
                                                                  ("hires fix", None), ("upscale + adapter", k)))
    kept = [row for row in run["rows"] if row["method"] == "upscale" and row["count_kept"]["value"] >= KEEPS]
    cast = max(kept, key=lambda row: row["colour_shift_levels"]["value"])
    if cast["colour_shift_levels"]["value"] > COLOUR_CAST_LEVELS:
        raise ValueError(f"the upscale evidence measures a colour cast of {cast['colour_shift_levels']['value']:.2f} "
                         f"levels ({cast['label']}, {cast['size']} px): the node should offer a colour match, and "
                         "this text should say so")
    lost = "; ".join(f"K {row['k']:.1f} at {row['scale'] ** 2}x: {row['colour_shift_levels']['value']:.2f}"
                     for row in run["rows"] if row["method"] == "upscale" and row["count_kept"]["value"] < KEEPS)

    def texture(row: dict) -> str:
        return f"{row['background_texture_ratio']['value']:.2f}"

    return (f"Colour and tone (the output area-downsampled to the input's size, against the input): the channel "
            f"means move by at most {cast['colour_shift_levels']['value']:.2f} levels of 255 in the rows that keep the "
            f"count (K {k} at 16x: {ours['colour_shift_levels']['value']:.2f}; bicubic "
            f"{bicubic['colour_shift_levels']['value']:.2f}, hires fix {hires['colour_shift_levels']['value']:.2f}), "
            f"under the {COLOUR_CAST_LEVELS:g} levels we would call a cast, so the node offers no colour match"
            + (f"; they move more only where the count was lost too ({lost}), which a lower `k` fixes. " if lost
               else ". ") +
            f"What does change is local: at 16x the channels' spread is {ours['contrast_ratio']['value']:.2f} of the "
            f"input's (hires fix {hires['contrast_ratio']['value']:.2f}) and the faint background texture "
            f"{texture(ours)} of it (bicubic {texture(bicubic)}, hires fix {texture(hires)}): the model smooths flat "
            "areas, which a global colour/tone match would not restore. The lite adapter restores both "
            f"({tuned['contrast_ratio']['value']:.2f} and {texture(tuned)}).\n")

# what looks measured outside the generated blocks

FIGURE = re.compile(r"""
    (?<![\w.-])\d[\d,]*\.\d+(?!\d|\.\d)(?:\s?%)?     # a decimal (also ending a sentence), not a version (0.3.75) nor a name (SD1.5)
  | (?<![\w.-])\d+\s?%                                # a percentage
  | (?<![\w.-])\d{1,3}(?:,\d{3})+(?!\d)               # a count with thousands separators
  | (?<![\w.-])\d+(?:\.\d+)?\s?(?:ms|s|seconds?|min|minutes?|h|hours?|CPU-[a-z]+|GB|MB|GiB|MiB|steps/s|it/s)(?![\w/])
""", re.X)
NOT_FIGURES = (re.compile(r"```.*?```", re.S), re.compile(r"`[^`\n]*`"), re.compile(r"\]\([^)]*\)"),
               re.compile(r"<!--.*?-->", re.S))

NOT_MEASURED: dict[str, str] = {
    "arXiv 2402.10491": "the paper's arXiv id",
    "`python3` 3.10 or 3.11": "supported versions",
    "Python of your ComfyUI, 3.10 to 3.13: it uses nothing newer than 3.10 and": "supported versions",
    "Python of your ComfyUI, 3.10 to 3.13, and": "supported versions",
    "(K 0.7, then `later_k` 0.4)": "the settings of the pictured cascade (the 16x recipe of docs/evidence.md)",
    "nothing that 3.12 or 3.13 removed. The suite runs on the test host's Python 3.11": "versions",
    "from a wheel published for 3.10 and 3.11 only": "versions",
    "on each of Python 3.10, 3.12 and 3.13": "versions",
    "schedules of at most 10,000 steps, sides of at most 16,384 px": "limits of sampling/limits.py",
    "under a 5 s deadline": "the plan route's deadline, a constant of the code",
    "each of at most 10,000": "a limit of sampling/limits.py",
    "within 5 s on a busy 2-core CPU": "the bound a test asserts",
    "bounded (1 MiB)": "a limit of the adapter file reader",
    "(10,000 steps at 16,384 px)": "limits of sampling/limits.py",
    "longer than 10,000 steps": "a limit of sampling/limits.py",
    "ran out of its 5 s": "the plan route's deadline, a constant of the code",
    "(SD1.5, SD2 768-v, SDXL, Flux, Wan\n  2.1": "a model's name",
    "Wan 2.1": "a model's name",
    "| `scale_by` | 2.0 |": "the node's default",
    "| `k` (K) | 0.7 |": "the node's default (the paper's K)",
    "lower (0.5–0.6)": "advice on a setting",
    "higher (0.8)": "advice on a setting",
    "| —, 1.0 |": "the node's default",
    "within 4%": "a constant of sampling/plan.py",
    "| 0.7 | 30–50 |": "the recipe's setting",
    "(50 DDIM steps, K 0.7)": "the paper's setting",
    "`end_percent` 0.9": "the setting that reproduces the released code",
    "so K = 0.7 keeps": "the paper's setting",
    "**89,136 trainable parameters": "a count the code fixes, pinned by tests/unit/test_adapter_modules.py",
    '"0.002M"': "the paper's claim, quoted",
    "(145,457,280 parameters)": "a count the code fixes, pinned by tests/unit/test_adapter_modules.py",
    "(145,457,280 parameters in": "the same count, the .pth reader's bound",
    "weight decay 0.01": "the trainer's default (the official code's)",
    "redraw (default 0.5)": "the Upscale node's default",
    "| 0.4–0.5 |": "an upscale recipe's starting value, inside the K the upscale-k block measures as keeping the count",
    "Flux Guidance 3.5": "the Flux recipe's setting (the host's Flux Guidance default)",
}


block("readme-flow")(flow_report.readme_flow)
block("flow-evidence")(flow_report.flow_evidence)
block("dit-adapter-cost")(dit_cost_report.dit_adapter_cost)
block("dit-adapter-evidence")(flow_report.dit_adapter_evidence)
block("readme-dit-adapter")(flow_report.readme_dit_adapter)


def _masked(text: str) -> str:
    """``text`` with generated blocks, code, link targets and comments blanked out (same length, same lines)."""
    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))
    text = BLOCK.sub(blank, text)
    for pattern in NOT_FIGURES:
        text = pattern.sub(blank, text)
    return text


def unlisted_figures(text: str, allowed: dict[str, str] = NOT_MEASURED) -> list[str]:
    """``line N: figure`` for every measured-looking figure outside the blocks that no allowed phrase covers."""
    covered = [(start, start + len(phrase)) for phrase in allowed
               for start in (m.start() for m in re.finditer(re.escape(phrase), text))]
    masked = _masked(text)
    return [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in FIGURE.finditer(masked)
            if not any(start <= m.start() and m.end() <= end for start, end in covered)]


# full size: real-layout checkpoints on this CPU (benchmarks/run.py --full-size)

FULL_SIZE = RESULTS / "full-size-cpu.json"
BASE_ONLY_TEST = ("tests/integration/test_adapter_injection.py::"
                  "test_trained_adapter_changes_the_output_only_from_the_first_high_res_stage_on")
FULL_SIZE_ROWS = (  # (family, label, check in the scenario, prediction: "same" | "cascade" | adapter variant)
    ("sd15", "node / core-node graph, UNet time equalised", "… with its UNet time set to the graph's", "same"),
    ("sd15", "node / core-node graph, as timed", "cascade / core-node graph, sampling", "same"),
    ("sd15", "cascade / direct at the target, sampling", "cascade / direct at target, sampling", "cascade"),
    ("sdxl", "high-res stage, lite / tuning-free", "high-res stages, lite / tuning-free", "lite"),
    ("sdxl", "high-res stage, official / tuning-free", "high-res stages, official-sdxl / tuning-free", "official-sdxl"),
    ("sdxl", "cascade / direct at the target, sampling", "cascade / direct at target, sampling", "cascade"),
)
MEMORY_ARMS = (("direct", "direct at target"), ("cascade", "Self-Cascade KSampler"),
               ("cascade + lite", "cascade + lite adapter"), ("cascade + official", "cascade + official-sdxl adapter"))


def _family(document: dict, family: str) -> dict:
    return next(entry for entry in document["families"] if entry["family"] == family)


def _check(entry: dict, name: str) -> dict:
    return next(check for check in entry["scenario"]["comparisons"] if check["check"] == name)


def _with_spread(check: dict) -> str:
    rounds = check["per_round"]
    return f"{ratio(check['ratio'])} ({min(rounds):.3f}–{max(rounds):.3f})"


def _predicted(entry: dict, kind: str) -> float:
    if kind == "same":
        return 1.0  # the node and the graph make the same UNet calls
    if kind == "cascade":
        return entry["predicted"]["cascade_over_direct"]
    return entry["predicted"]["adapter_ratio"][kind]


def _reference(counts: list[dict], family: str, kind: str) -> float:
    """The README's operation count at 1024→2048 (results/full-size-flops.json)."""
    count = next(c for c in counts if c["family"] == family and c["sizes"] == [1024, 2048])
    return 1.0 if kind == "same" else count["cascade_over_direct"] if kind == "cascade" else count["adapter_ratio"][kind]


def _budget(check: dict) -> str:
    return "—" if check["budget"] is None else f"≤ {check['budget']:g} {'✓' if check['verdict'] == 'ok' else '✗'}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def full_size_rows(document: dict, counts: list[dict]) -> list[str]:
    """The measured ratios beside their operation-count predictions, at this size and at 1024→2048."""
    families = {entry["family"] for entry in document["families"]}
    lines = ["| model | px | comparison | measured: median (min–max) | op count, this size | op count, 1024→2048 "
             "| budget |",
             "|---|---|---|---:|---:|---:|---:|"]
    for family, label, name, kind in FULL_SIZE_ROWS:
        if family not in families:
            continue
        entry = _family(document, family)
        check = _check(entry, name)
        px = "→".join(map(str, entry["scenario"]["sizes"]))
        lines.append(f"| {family} | {px} | {label} | {_with_spread(check)} | {ratio(_predicted(entry, kind))} | "
                     f"{ratio(_reference(counts, family, kind))} | {_budget(check)} |")
    return lines


def full_size_memory(document: dict) -> list[str]:
    lines = ["| model | " + " | ".join(label for label, _ in MEMORY_ARMS) + " |", "|---|" + "---:|" * len(MEMORY_ARMS)]
    for entry in document["families"]:
        arms = entry["scenario"]["arms"]
        cells = [f"{arms[arm]['peak_bytes'] / 2**20:.0f}" if arm in arms else "—" for _, arm in MEMORY_ARMS]
        lines.append(f"| {entry['family']} | {' | '.join(cells)} |")
    return lines


def attention_sentence(document: dict) -> str:
    shares = document["operation_shares"]
    parts = []
    for family, by_size in shares.items():
        measured = str(_family(document, family)["scenario"]["sizes"][-1])
        parts.append(f"{family} {_percent(by_size[measured]['attention'])} at {measured}² "
                     f"({_percent(by_size['1024']['attention'])} at 1024², "
                     f"{_percent(by_size['2048']['attention'])} at 2048²)")
    return ("Attention (the QKᵀ and AV products) is, by operation count, " + "; ".join(parts) + " of a UNet call; "
            "convolutions and linear layers share the rest. At the measured size attention weighs less than at "
            "1024², so the ratios that attention moves are predicted at both sizes.")


def adapter_paragraph(document: dict, counts: list[dict]) -> str:
    """How far each adapter is from 1.15 at full width, and why (the official adapter in detail)."""
    entry = _family(document, "sdxl")
    verdicts = []
    for variant, name in (("lite", "lite adapter"), ("official-sdxl", "official adapter")):
        check = _check(entry, f"high-res stages, {variant} / tuning-free")
        verdict = ("meets the 1.15 budget" if check["ratio"] <= check["budget"]
                   else f"misses the 1.15 budget by {check['ratio'] - check['budget']:.3f}")
        verdicts.append(f"the {name}'s high-resolution stage costs {check['ratio']:.3f}x the tuning-free stage "
                        f"here (rounds {min(check['per_round']):.3f}–{max(check['per_round']):.3f}): it {verdict}")
    measured = _check(entry, "high-res stages, official-sdxl / tuning-free")["ratio"]
    predicted = entry["predicted"]["adapter_ratio"]["official-sdxl"]
    reference = _reference(counts, "sdxl", "official-sdxl")
    text = (f"**Tuned / tuning-free at SDXL's full width.** {verdicts[0][0].upper()}{verdicts[0][1:]}; "
            f"{verdicts[1]}. For the official adapter the operation count predicts {predicted:.3f} "
            f"at this size and {reference:.3f} at 1024→2048: the extra cost is the pivot pass (the UNet's encoder and "
            "middle block over the pivot, a quarter of the pixels) plus the upsamplers, and the pivot pass weighs "
            "less as the main pass's attention grows quadratically with size.")
    profile = entry.get("profile_cpu_s")
    if profile:
        base = profile["tuning-free"]
        text += (f" Profiled (one call at the target, cProfile): the pivot pass is {_percent(profile['pivot pass'] / base)} "
                 f"of a tuning-free call, the upsamplers {_percent(profile['adapter modules'] / base)} (of which "
                 f"fp16→fp32 weight casts {_percent(profile['weight casts'] / base)}), the additions "
                 f"{_percent((profile['backbone additions'] + profile['output block 0 addition']) / base)}.")
    text += (f" What the count leaves out (norms, activations, the nearest upsampling, weight casts, the pivot "
             f"pass's smaller matrix products running slower per operation) adds {measured - predicted:+.3f} here; "
             f"added to the 1024→2048 count that estimates {reference + measured - predicted:.3f}x at full size, "
             "unmeasured without a GPU.")
    return text


def _rate(flops: float, seconds: list[float]) -> str:
    return f"{flops / statistics.median(seconds) / 1e9:.0f} GFLOP/s"


def explanation(document: dict, counts: list[dict]) -> str:
    """Why the measured ratios differ from the counts: time outside UNet calls, and operations per CPU-second by size."""
    parts = []
    for entry in document["families"]:
        arms, scenario, flops = entry["scenario"]["arms"], entry["scenario"], entry["predicted"]["unet_flops"]
        node = arms["Self-Cascade KSampler"]
        outside = [s - u for s, u in zip(node["sample_s"], node["unet_s"])]
        if "core-node graph" in arms:
            graph = arms["core-node graph"]
            graph_outside = [s - u for s, u in zip(graph["sample_s"], graph["unet_s"])]
            parts.append(f"{entry['family']}: the node and the core-node graph make the same UNet calls (outputs equal "
                         f"to within 1e-5; the count: 1.000); outside them the node spent "
                         f"{statistics.median(outside):.3f} CPU-s and the graph {statistics.median(graph_outside):.3f} "
                         f"against {statistics.median(node['unet_s']):.0f} "
                         "in UNet calls, so the timed ratio's spread is the UNet time's round-to-round noise.")
        if "direct at target" in arms:
            base, target = (str(size) for size in scenario["sizes"])
            base_calls = [(u - h) / scenario["steps"] for u, h in zip(node["unet_s"], node["high_res_s"])]
            direct = arms["direct at target"]
            target_calls = [u / direct["unet_calls"] for u in direct["unet_s"]]
            measured = _check(entry, "cascade / direct at target, sampling")["ratio"]
            parts.append(f"{entry['family']} cascade / direct: per operation the {base}² calls ran at "
                         f"{_rate(flops[base], base_calls)} and the {target}² calls at {_rate(flops[target], target_calls)}; "
                         f"the count assumes one rate, which is why {measured:.3f} is measured against "
                         f"{entry['predicted']['cascade_over_direct']:.3f} counted (at 1024→2048 the count says "
                         f"{_reference(counts, entry['family'], 'cascade'):.3f}).")
    return " ".join(parts)


def workflow_lines(document: dict) -> list[str]:
    lines = ["| workflow | checkpoint | native size detected | stages | image | seconds |", "|---|---|---:|---|---|---:|"]
    for run in document["workflows"]:
        lines.append(f"| `{run['workflow']}` | `{run['checkpoint']}` | {run['native_px']}² | {'; '.join(run['stages'])} | "
                     f"{run['image_size'][0]}×{run['image_size'][1]} | {run['seconds']:.0f} |")
    return lines


def adapter_checks(document: dict) -> str:
    runs = [run for run in document["workflows"] if run["adapter"]]
    entry = _family(document, "sdxl")
    changed = {name: value for name, value in entry["injection"]["max_abs_change"].items() if value > 0}
    parameters = entry["adapters"]["official-sdxl"]["parameters"]
    text = (f"In one SDXL UNet call ({entry['injection']['px']} px) the official adapter ({parameters:,} parameters, "
            f"the generated `upsampler_only.pth`) changes the backbone after exactly {', '.join(changed)} "
            f"(expected: {', '.join(entry['injection']['expected'])}) and nowhere else.")
    for run in runs:
        text += (f" Through the server, it changed the {run['image_size'][0]} px latent by up to "
                 f"{run['adapter_changes_output']:.3g} (its values reach {run['latent_max']:.3g}), and a base-only run was "
                 f"{'bit-identical' if run['base_only_equal'] else 'NOT identical'} with and without it "
                 f"(`torch.equal`, as `{BASE_ONLY_TEST}` asserts on the tiny SDXL).")
    return text


def untimed_note(document: dict) -> str:
    """Where a family left out of the run is still exercised, so a missing row does not read as untested."""
    timed = {entry["family"] for entry in document["families"]}
    if "sd15" in timed:
        return ""
    return (" SD1.5 is not timed in this run; its checkpoint runs the shipped workflow through the server in the test "
            "suite (`tests/server/test_real_layout_workflows.py`).")


def full_size_block(document: dict, counts: list[dict]) -> str:
    info = document["info"]
    families = ", ".join(f"{entry['family']} (detected {entry['detected_config']})" for entry in document["families"])
    stage_steps = document["families"][0]["predicted"]["stage_steps"]
    lines = [f"Full size on this CPU: random-weight checkpoints in the released SD1.5 and SDXL base layouts "
             f"(`benchmarks/real_layout.py`), loaded by ComfyUI's own loader: {families}. {info['date']}, "
             f"{info['machine']}, {info['device']}, {info['software']}, timed by {info['clock']}, `{info['command']}`. "
             f"{info['settings']}, {stage_steps} step{'s' * (stage_steps != 1)} per high-resolution stage, no VAE decode; median of "
             f"{info['rounds']} interleaved rounds (min–max of the per-round ratios).{untimed_note(document)}", ""]
    lines += full_size_rows(document, counts)
    lines += ["", f"Peak memory, MiB ({document['memory']['meaning']}):", ""] + full_size_memory(document)
    lines += ["", attention_sentence(document), "", explanation(document, counts)]
    if any(entry["family"] == "sdxl" for entry in document["families"]):
        lines += ["", adapter_paragraph(document, counts)]
    if document["workflows"]:
        lines += ["", "The shipped workflows through the real server on these files (sizes, steps and file names "
                  "changed; the exact edits are in `benchmarks/results/full-size-cpu.md`):", ""] + workflow_lines(document)
        if any(run["adapter"] for run in document["workflows"]):
            lines += ["", adapter_checks(document)]
    return "\n".join(lines) + "\n"


@block("performance-full-size")
def full_size() -> str:
    return full_size_block(load(FULL_SIZE), load(RESULTS / "full-size-flops.json")["flops"])


def full_size_markdown(document: dict) -> str:
    """The whole run for ``results/<name>.md``: the README's block, every arm, every edit of the workflows."""
    counts = load(RESULTS / "full-size-flops.json")["flops"]
    lines = [f"### Benchmarks: {document['info']['mode']}", "", full_size_block(document, counts)]
    lines += ["| model | arm | sample CPU s | UNet CPU s | high-res stage CPU s | UNet calls | peak MiB |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for entry in document["families"]:
        for name, arm in entry["scenario"]["arms"].items():
            high_res = f"{statistics.median(arm['high_res_s']):.2f}" if any(arm["high_res_s"]) else "—"
            lines.append(f"| {entry['family']} | {name} | {statistics.median(arm['sample_s']):.2f} | "
                         f"{statistics.median(arm['unet_s']):.2f} | {high_res} | {arm['unet_calls']} | "
                         f"{arm['peak_bytes'] / 2**20:.0f} |")
    lines += ["", "| model | comparison | per round | median | budget |", "|---|---|---|---:|---:|"]
    for entry in document["families"]:
        for check in entry["scenario"]["comparisons"]:
            rounds = ", ".join(f"{value:.3f}" for value in check["per_round"]) or "—"
            lines.append(f"| {entry['family']} | {check['check']} | {rounds} | {ratio(check['ratio'])} | {_budget(check)} |")
    lines += ["", "Operation shares of one tuning-free UNet call (CFG batch), counted:", "",
              "| model | px | attention | convolution | linear |", "|---|---:|---:|---:|---:|"]
    for family, by_size in document["operation_shares"].items():
        for size, shares in by_size.items():
            lines.append(f"| {family} | {size} | {_percent(shares['attention'])} | {_percent(shares['convolution'])} | "
                         f"{_percent(shares['linear'])} |")
    for run in document["workflows"]:
        lines += ["", f"`workflows/api/{run['workflow']}.json` as run ({run['seconds']:.0f} s):", ""]
        lines += [f"- {change}" for change in run["changes"]]
        if run["adapter"]:
            lines += ["", "Load Upsampler Adapter said:", "", "```", run["adapter"], "```"]
    return "\n".join(lines) + "\n"


def relative_links(text: str, document: Path) -> str:
    """A block's repository-root links as seen from ``document`` (``../benchmarks/...`` from docs/)."""
    up = "../" * len(document.resolve().parent.relative_to(REPO).parts)
    return ROOT_LINK.sub(lambda match: match.group(1) + up, text) if up else text


def render(text: str, document: Path = README) -> str:
    """``text`` (of ``document``) with every generated block re-rendered; an unknown block name is an error."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"block '{name}' has no renderer in benchmarks/readme.py")
        return f"{match.group(1)}{relative_links(BLOCKS[name](), document)}{match.group(4)}"
    return BLOCK.sub(replace, text)


def block_names(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a document differs from the results")
    args = parser.parse_args(argv)
    failed = False
    for document in documents():
        current = document.read_text(encoding="utf-8")
        rendered = render(current, document)
        shown = document.relative_to(REPO)
        if not args.check:
            document.write_text(rendered, encoding="utf-8")
            print(f"rendered {len(block_names(rendered))} blocks into {shown}")
            continue
        if rendered != current:
            print(f"{shown} is behind the result files: run python -m benchmarks.readme", file=sys.stderr)
            failed = True
        unlisted = unlisted_figures(current)
        if unlisted:
            print(f"{shown} has measured-looking figures outside generated blocks (render them in a block, or list "
                  "them in NOT_MEASURED with what they are):\n  " + "\n  ".join(unlisted), file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
