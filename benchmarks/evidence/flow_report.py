"""The flow demo model's evidence as text: ``flow_results.json`` -> the README's flow recipes and docs' tables.

Pure JSON to markdown (no torch, no ComfyUI), as ``report.py`` is for the UNet's evidence;
``benchmarks/readme.py`` registers these as generated blocks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .. import dit_cost_report
from .report import interval, row

RESULTS = Path(__file__).resolve().parent / "flow_results.json"
PAPER_K = 0.7
SHIFT_MODELS = {"shift 1": "Flux Schnell, flow models at shift 1", "shift 3": "SD3 / Flux (shift 3 to 3.16)",
                "shift 8": "Wan 2.1 (ModelSamplingSD3 shift 8)"}


def setting(method: str) -> str:
    """``cascade-0.5-0.3`` -> "K 0.5, later_k 0.3"; ``cascade-0.7-snr`` -> "K 0.7 (snr)"."""
    parts = method.split("-")[1:]
    axis = " (snr)" if parts[-1] == "snr" else ""
    ks = [part for part in parts if part != "snr"]
    return f"K {ks[0]}" + (f", later_k {ks[1]}" if len(ks) > 1 else "") + axis


def fidelity(run: dict, shift: str, scale: str, method: str) -> float:
    return row(run["k_studies"][shift][f"k-study-{scale}"], method)["count_fidelity"]["value"]


def k_study_table(run: dict) -> str:
    """Count fidelity per K setting (rows) at each shift and scale (columns), with each row's time at 16x."""
    shifts = list(run["k_studies"])
    methods = list(dict.fromkeys(entry["method"] for tables in run["k_studies"].values() for table in tables.values()
                                 for entry in table["rows"] if entry["method"] != "real"))
    header = "| Row | " + " | ".join(f"{shift}: 4x | {shift}: 16x" for shift in shifts) + " |"
    lines = [header, "|---|" + "---|" * (2 * len(shifts))]
    for method in methods:
        cells = []
        for shift in shifts:
            for scale in ("4x", "16x"):
                table = run["k_studies"][shift][f"k-study-{scale}"]
                entry = next((e for e in table["rows"] if e["method"] == method), None)
                cells.append("–" if entry is None else
                             f"{interval(entry['count_fidelity'])} ({entry['relative_time']:.2f}x)")
        label = next(e["label"] for tables in run["k_studies"].values() for table in tables.values()
                     for e in table["rows"] if e["method"] == method)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decision_text(run: dict) -> str:
    decision = run["decision"]
    best = decision["best_single_k"]
    percent, snr = best["percent"], best["snr"]
    winner = decision["axis"]
    return (f"Best single K over the shifts measured (mean 16x count fidelity): {setting(percent['method'])} on the "
            f"percent axis, {percent['mean_count_fidelity']:.2f}; {setting(snr['method'])} on the SNR axis, "
            f"{snr['mean_count_fidelity']:.2f}. So `k_axis` `auto` reads K on the **{winner}** axis on flow models"
            + (" (the SNR axis did not beat it; the shipped defaults are per shift)." if winner == "percent"
               else " (the rule fixed before the run: the axis whose best single K has the higher mean)."))


def paper_k_text(run: dict) -> str:
    """What the paper's K did on each axis at each shift, against each shift's recipe: the reading the README gives."""
    parts = []
    for shift, recipe in run["decision"]["per_shift"].items():
        paper = fidelity(run, shift, "16x", f"cascade-{PAPER_K:g}")
        matched = fidelity(run, shift, "16x", f"cascade-{PAPER_K:g}-snr")
        direct = fidelity(run, shift, "16x", "direct")
        parts.append(f"at {shift}, direct {direct:.2f}, K 0.7 on the percent axis {paper:.2f}, the paper's SNR "
                     f"(K 0.7 on the SNR axis) {matched:.2f}, the recipe ({setting(recipe['method'])}) "
                     f"{recipe['count_fidelity']:.2f}")
    return "16x count fidelity, k-study seeds: " + "; ".join(parts) + "."


def contradictions(run: dict) -> list[str]:
    """Where the measurement disagrees with the paper's K or with the SNR argument, said plainly."""
    out = []
    for shift, recipe in run["decision"]["per_shift"].items():
        for key, what in ((f"cascade-{PAPER_K:g}-snr", "the paper's noise level (K 0.7 on the SNR axis)"),):
            paper = fidelity(run, shift, "16x", key)
            if recipe["method"] != key and recipe["count_fidelity"] > paper:
                out.append(f"at {shift} {setting(recipe['method'])} kept the count more often than {what} "
                           f"({recipe['count_fidelity']:.2f} against {paper:.2f}{tested(run, shift, recipe['method'], key)})")
    if run["decision"]["axis"] == "percent":
        out.append("matching the paper's signal-to-noise ratio (the issue's hypothesis) did not keep the composition "
                   "better across shifts than the percent axis")
    return out


def tested(run: dict, shift: str, method: str, against: str) -> str:
    """", significant"/", not significant" for a paired test the K study ran (Holm-corrected), else ", not tested": a
    difference with no test behind it is not read as one."""
    comparison = next((c for c in run["k_studies"][shift]["k-study-16x"]["comparisons"] if c["metric"] ==
                       "count_fidelity" and c["method"] == method and c["against"] == against), None)
    if comparison is None:
        return ", not tested"
    return ", significant" if comparison["significant"] else ", not significant"


def axes_margin(run: dict) -> str:
    """How far apart the two axes' best single settings are, against the intervals a row has at this N."""
    best = run["decision"]["best_single_k"]
    margin = abs(best["snr"]["mean_count_fidelity"] - best["percent"]["mean_count_fidelity"])
    chosen = row_of_any(run, best[run["decision"]["axis"]]["method"])
    width = (chosen["count_fidelity"]["high"] - chosen["count_fidelity"]["low"]) / 2
    return (f"The two axes' best settings are {margin:.2f} apart in mean count fidelity, well inside a row's "
            f"interval (about ±{width:.2f} at N = {chosen['n']})" if margin < width else
            f"The two axes' best settings are {margin:.2f} apart in mean count fidelity, beyond a row's interval "
            f"(about ±{width:.2f} at N = {chosen['n']})")


def percent_k_cost(run: dict) -> str:
    """What K 0.7 on the percent axis (the pack's cut before) did against each shift's recipe, with its test."""
    parts, significant = [], []
    for shift, recipe in run["decision"]["per_shift"].items():
        key = f"cascade-{PAPER_K:g}"
        verdict = tested(run, shift, recipe["method"], key)
        parts.append(f"{shift} {fidelity(run, shift, '16x', key):.2f} against {recipe['count_fidelity']:.2f}")
        significant += [shift] if verdict == ", significant" else []
    said = (f"significant (Holm) at {', '.join(significant)}" if significant else
            "no difference is significant at this N after Holm's correction")
    return ("K 0.7 on the percent axis, the pack's cut before, against the recipe: " + "; ".join(parts) + f" ({said}).")


def row_of_any(run: dict, method: str) -> dict:
    """``method``'s 16x K-study row at the loaded shift."""
    return row(run["k_studies"][f"shift {run['study']['headline_shift']:g}"]["k-study-16x"], method)


def upscale_at(run: dict, shift: str) -> str:
    """Self-Cascade Upscale's count kept at ``shift`` per k and axis, with intervals."""
    rows = [entry for entry in run["upscale"][shift]["rows"] if entry["method"] == "upscale"]
    return ", ".join(f"k {entry['k']:g} on `{entry['k_axis']}` {interval(entry['count_kept'])}" for entry in rows)


def readme_flow() -> str:
    """The README's flow recipes: one row per shift, then the reading."""
    run = load()
    lines = ["| Flow model (sampling shift) | K (`k_axis`) | Upscale `k` | 16x count fidelity: this K, K 0.7 on `percent`, "
             "direct |",
             "|---|---|---|---|"]
    for shift, recipe in run["decision"]["per_shift"].items():
        upscale = run["upscale_recipes"][shift]
        k = f"{recipe['k']:g}" + (f", `later_k` {recipe['later_k']:g}" if recipe["later_k"] else "")
        lines.append(f"| {SHIFT_MODELS.get(shift, shift)} | {k} (`{recipe['k_axis']}`) | {upscale['k']:g} "
                     f"(`{upscale['k_axis']}`) | {recipe['count_fidelity']:.2f}, "
                     f"{fidelity(run, shift, '16x', f'cascade-{PAPER_K:g}'):.2f}, "
                     f"{fidelity(run, shift, '16x', 'direct'):.2f} |")
    said = contradictions(run)
    flow_native, unet_native = (row(table, "native")["count_fidelity"]["value"] for table in run["tables"][:2])
    lines += ["", f"Measured on the flow demo model (a Flux-style DiT, N = {run['settings']['k_study_n']} per row and "
              "shift, 16x area; [docs/flow-evidence.md](docs/flow-evidence.md)). Its native count fidelity is "
              f"{flow_native:.2f} (the UNet demo model's {unet_native:.2f} on the same seeds), which caps every row. "
              + decision_text(run) + " "
              + axes_margin(run) + ". " + percent_k_cost(run)
              + (" Where this disagrees with the paper's K: " + "; ".join(said) + "." if said else ""),
              "", f"Self-Cascade Upscale of real renders (32 -> 64 px, N = {run['study']['upscale_n']}), the share "
              f"that keeps the input's disc count at the largest shift measured ({list(run['upscale'])[-1]}): "
              + upscale_at(run, list(run["upscale"])[-1]) + " (the Wan upscale workflow shipped k 0.5 read on "
              "`percent` before this study)."]
    return "\n".join(lines) + "\n"


def flow_evidence() -> str:
    """docs/flow-evidence.md: the model, native and direct, the K study, the headline at the loaded shift."""
    run = load()
    training, native, unet = run["training"], run["tables"][0], run["tables"][1]
    flow_native, unet_native = row(native, "native"), row(unet, "native")
    lines = [f"Model: {training['parameters']:,} parameters, trained {training['config']['steps']:,} steps of "
             f"{training['config']['batch']} in {training['cpu_seconds'] / 60:.0f} CPU minutes (one thread); CFG "
             f"{run['cfg_choice']['chosen']:g}, chosen on the held-out seed {run['cfg_choice']['seed']}; "
             f"{run['settings']['steps']} {run['settings']['sampler']}/{run['settings']['scheduler']} steps. "
             f"Native {native['size']}x{native['size']} count fidelity (N = {native['n']}): flow model "
             f"{interval(flow_native['count_fidelity'])}, the UNet demo model on the same seeds "
             f"{interval(unet_native['count_fidelity'])}.", "",
             "### K study: count fidelity (time relative to direct) per shift and scale", "",
             f"N = {run['settings']['k_study_n']} per cell, k-study seeds, 95 % Wilson intervals. "
             + paper_k_text(run), "", k_study_table(run), "", decision_text(run), "",
             f"### Headline at shift {run['tables'][2]['shift']:g}, main seeds", "",
             "| Area | Row | Count fidelity ↑ | Duplication ↓ | Patch FD ↓ | Time |", "|---|---|---|---|---|---:|"]
    for table in run["tables"][2:]:
        for entry in table["rows"]:
            time = "–" if entry["relative_time"] is None else f"{entry['relative_time']:.2f}x"
            lines.append(f"| {table['scale'] ** 2}x (N = {table['n']}) | {entry['label']} | "
                         f"{interval(entry['count_fidelity'])} | {interval(entry['duplication'])} | "
                         f"{interval(entry['patch_fd'], 1)} | {time} |")
    lines += ["", "### Self-Cascade Upscale, 32 -> 64 px, real renders as input", "",
              "| Shift | Row | Count kept ↑ | Centre shift (px) ↓ | CPU s/image |", "|---|---|---|---|---:|"]
    for shift, result in run["upscale"].items():
        for entry in result["rows"]:
            lines.append(f"| {shift} | {entry['label']} | {interval(entry['count_kept'])} | "
                         f"{interval(entry['centre_shift_px'])} | {entry['seconds_per_image']:.2f} |")
    lines += ["", "Every table with its paired tests: [flow_results.md](benchmarks/evidence/flow_results.md)."]
    return "\n".join(lines) + "\n"


def load(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


DIT_RESULTS = Path(__file__).resolve().parent / "dit_adapter_results.json"


def _tuned_pair(table: dict) -> tuple[dict, dict]:
    """(tuning-free row, tuned row) of a dit-lite evidence table."""
    tuning_free, tuned = [entry for entry in table["rows"] if entry["method"] != "real"]
    return tuning_free, tuned


def _tuned_test(table: dict, metric: str) -> Optional[dict]:
    """The paired test of the tuned row against the tuning-free one on ``metric`` (Holm-corrected)."""
    tuning_free, tuned = _tuned_pair(table)
    return next((c for c in table["comparisons"] if c["metric"] == metric and c["method"] == tuned["method"]
                 and c["against"] == tuning_free["method"]), None)


def dit_verdict(run: dict) -> str:
    """Whether dit-lite helped, per scale, on composition and on detail, in words the paired tests allow."""
    parts = []
    for table in run["tables"]:
        tuning_free, tuned = _tuned_pair(table)
        said = []
        for metric, name, digits, better in (("count_fidelity", "count fidelity", 2, 1), ("patch_fd", "patch FD", 1, -1)):
            test = _tuned_test(table, metric)
            before, after = tuning_free[metric]["value"], tuned[metric]["value"]
            values = f"({before:.{digits}f} -> {after:.{digits}f})"
            if test and test["significant"]:
                said.append(f"{'improved' if (after - before) * better > 0 else 'worsened'} {name} {values}")
            else:
                said.append(f"did not change {name} significantly {values}")
        parts.append(f"at {table['scale'] ** 2}x area dit-lite {' and '.join(said)} at "
                     f"{tuned['relative_time'] / tuning_free['relative_time']:.2f}x the tuning-free cascade's CPU time")
    return "; ".join(parts)


def dit_adapter_evidence() -> str:
    """docs/adapters.md: tuning-free against dit-lite on the flow demo model, with the adapters' training."""
    run = load(DIT_RESULTS)
    lines = [f"The flow demo model at the flow study's K at shift 3 ({setting_of(run)}), N = {run['tables'][0]['n']} "
             "per row on the main seeds, both rows from the same native samples; 95 % intervals (Wilson; bootstrap "
             "for patch FD); McNemar's exact test, tuned against tuning-free. Time: CPU seconds per image relative "
             "to direct sampling at the target. `python benchmarks/evidence/dit_adapter_evaluate.py` "
             "([tables](benchmarks/evidence/dit_adapter_results.md)).", "",
             "| Area | Row | Count fidelity ↑ | Duplication ↓ | Patch FD ↓ | Time | p, count (tuned vs tuning-free) |",
             "|---|---|---|---|---|---:|---:|"]
    for table in run["tables"]:
        tuning_free, tuned = _tuned_pair(table)
        comparison = _tuned_test(table, "count_fidelity")
        for entry in (tuning_free, tuned):
            p = f"{comparison['p_holm']:.3f}" if comparison and entry is tuned else ""
            lines.append(f"| {table['scale'] ** 2}x | {entry['label']} | {interval(entry['count_fidelity'])} | "
                         f"{interval(entry['duplication'])} | {interval(entry['patch_fd'], 1)} | "
                         f"{entry['relative_time']:.2f}x | {p} |")
    lines += ["", "| Adapter (stage to) | Parameters | Steps x batch | Loss before -> after | CPU minutes |",
              "|---|---:|---|---|---:|"]
    for record in run["adapters"]:
        lines.append(f"| {record['size']} px | {record['parameters']:,} | {record['steps']} x {record['batch']} | "
                     f"{record['loss_before']:.4f} -> {record['loss_after']:.4f} | {record['cpu_seconds'] / 60:.1f} |")
    return "\n".join(lines + ["", "On the flow demo model " + dit_verdict(run) + "."]) + "\n"


def readme_dit_adapter() -> str:
    """The README's dit-lite sentence: what it did on the flow demo model, and what it costs at Flux.1's widths."""
    run, cost = load(DIT_RESULTS), dit_cost_report.load()["flux1_dev"]
    return (f"Measured on the flow demo model (a Flux-style DiT, N = {run['tables'][0]['n']} per row): "
            + dit_verdict(run) + f". At Flux.1-dev's widths a tuned {cost['sizes'][0]}² → {cost['sizes'][1]}² stage "
            f"counts {cost['ratio']:.3f}x a tuning-free stage's operations. Rows, the adapters' training and the cost: "
            "[docs/adapters.md](docs/adapters.md#what-dit-lite-does-on-the-flow-demo-model).\n")


def setting_of(run: dict) -> str:
    k = f"K {run['settings']['k']:g}" + (f", later_k {run['later_k']:g}" if run["later_k"] else "")
    return k + ("" if run["k_axis"] == "percent" else f" on the {run['k_axis']} axis")
