"""The dit-lite adapter's cost as text: ``results/dit-adapter-cost.json`` -> a markdown table and one sentence.

Pure JSON to markdown (no torch, no ComfyUI), as ``evidence/flow_report.py`` is for the flow evidence;
``benchmarks/readme.py`` registers ``dit_adapter_cost`` as a generated block. The JSON is written by
``benchmarks/dit_adapter_cost.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "dit-adapter-cost.json"


def load(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def percent(part: float, whole: float) -> str:
    """One decimal; two significant digits below 0.1% (the upsamplers' share would read 0.0%)."""
    value = 100 * part / whole
    return f"{value:.1f}%" if value >= 0.1 else f"{value:.2g}%"


def _tokens(entry: dict) -> str:
    tokens = entry["tokens"]
    return f"{tokens['pivot_image']} → {tokens['target_image']} (+{tokens['text']})"


def _blocks(entry: dict) -> str:
    return f"{entry['double_blocks']} + {entry['single_blocks']}"


def widest(run: dict) -> dict:
    """The measured configuration with the largest hidden size."""
    return max(run["measured"], key=lambda entry: entry["hidden_size"])


def cost_table(run: dict) -> list[str]:
    """Flux.1-dev counted, then every measured configuration: measured beside its own count."""
    flux = run["flux1_dev"]
    px = "→".join(f"{size}²" for size in flux["sizes"])
    lines = ["| model | hidden | blocks | image tokens, pivot → target (+ text) | counted | "
             "measured, median (min–max) | CPU s per tuning-free call |",
             "|---|---:|---:|---|---:|---:|---:|",
             f"| Flux.1-dev, {px} | {flux['hidden_size']} | {_blocks(flux)} | {_tokens(flux)} | {flux['ratio']:.3f} "
             "| — | — |"]
    for entry in run["measured"]:
        lines.append(f"| {entry['name']} | {entry['hidden_size']} | {_blocks(entry)} | {_tokens(entry)} | "
                     f"{entry['counted_ratio']:.3f} | {entry['ratio']:.3f} ({entry['ratio_min']:.3f}–"
                     f"{entry['ratio_max']:.3f}) | {entry['tuning_free_s']:.3f} |")
    return lines


def cost_sentence(run: dict) -> str:
    flux = run["flux1_dev"]
    cascade = flux["cascade"]
    wide = widest(run)
    return (f"At Flux.1-dev's real widths a tuned {flux['sizes'][0]}² → {flux['sizes'][1]}² stage costs "
            f"{flux['ratio']:.3f}x the operations of a tuning-free one (the pivot pass "
            f"{percent(flux['pivot_pass_flops'], flux['tuning_free_flops'])} of a tuning-free call, the upsamplers "
            f"{percent(flux['upsampler_flops'], flux['tuning_free_flops'])}), the whole cascade "
            f"({cascade['steps']} steps, {cascade['stage_steps']} in the stage) "
            f"{cascade['tuned_over_tuning_free']:.3f}x; "
            f"measured on this CPU at hidden {wide['hidden_size']}, the widest run here, a tuned call took "
            f"{wide['ratio']:.3f}x the CPU time of a tuning-free one (rounds {wide['ratio_min']:.3f}–"
            f"{wide['ratio_max']:.3f}, {len(wide['rounds'])} rounds) against {wide['counted_ratio']:.3f}x counted.")


def dit_cost_markdown(run: dict) -> str:
    """The table and the sentence, from a ``dit-adapter-cost.json`` document."""
    info = run["info"]
    head = (f"One high-resolution model call, tuned (an untrained dit-lite adapter) / tuning-free: operations counted "
            f"on the meta device, CPU time measured by `{info['command']}` on {info['date']}; {info['device']}; "
            f"{info['machine']}.")
    return "\n".join([head, "", *cost_table(run), "", cost_sentence(run)]) + "\n"


def dit_adapter_cost() -> str:
    """The generated block: the committed results rendered."""
    return dit_cost_markdown(load())
