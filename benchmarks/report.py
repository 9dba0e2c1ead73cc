"""The run written down: a compact markdown table set (for the README) and the full readings as JSON."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from .flops import FlopCount
from .measure import PeakMemory
from .sampling_bench import ScenarioResult
from .training_bench import TrainingResult


@dataclass(frozen=True)
class RunInfo:
    """Where, when and how the figures were measured."""

    mode: str
    command: str
    date: str  # UTC
    device: str  # what ran the models
    machine: str  # CPU model and cores, load
    software: str  # torch, ComfyUI
    rounds: int
    warmup: int
    settings: str  # sampler, steps, CFG, K


def _seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "—"


def _ratio(value: float) -> str:
    return f"{value:.3f}"


def sampling_tables(scenarios: list[ScenarioResult], memory: PeakMemory) -> list[str]:
    lines = [f"| model | px | arm | sample s | UNet s | high-res stages s | decode s | {memory.label} |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for scenario in scenarios:
        for name, arm in scenario.arms.items():
            high_res = _seconds(arm.high_res_s) if any(arm.high_res_s) else "—"
            lines.append(f"| {scenario.models.family} | {scenario.work.label()} | {name} | {_seconds(arm.sample_s)} | "
                         f"{_seconds(arm.unet_s)} | {high_res} | {_seconds(arm.decode_s)} | "
                         f"{memory.display(arm.peak_bytes)} |")
    lines += ["", "| model | px | comparison | ratio | budget | verdict |", "|---|---|---|---:|---:|---|"]
    for scenario in scenarios:
        for check in scenario.comparisons:
            budget = f"≤ {check.budget:g}" if check.budget is not None else "—"
            lines.append(f"| {scenario.models.family} | {scenario.work.label()} | {check.check} | {_ratio(check.ratio)} | "
                         f"{budget} | {check.verdict} |")
    return lines


def training_table(results: list[TrainingResult], memory: PeakMemory) -> list[str]:
    lines = [f"| model | adapter | parameters | crop px | batch | precision | steps/s | {memory.label} |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for result in results:
        figures = (f"{result.steps_per_second:.2f} | {memory.display(result.peak_bytes)}" if result.error is None
                   else f"{result.error} | —")
        lines.append(f"| {result.family} | {result.variant} | {result.parameters / 1e6:.3f}M | {result.resolution} | "
                     f"{result.batch} | {result.precision} | {figures} |")
    return lines


def flops_table(counts: list[FlopCount]) -> list[str]:
    variants = list(dict.fromkeys(v for count in counts for v in count.adapter_ratio))
    lines = ["| model | px | TFLOP per UNet call at target (CFG batch) | "
             + " | ".join(f"{v} / tuning-free, per call" for v in variants) + " | cascade / direct | cascade / hires fix |",
             "|---|---|---:|" + "---:|" * len(variants) + "---:|---:|"]
    for count in counts:
        ratios = " | ".join(_ratio(count.adapter_ratio[v]) if v in count.adapter_ratio else "—" for v in variants)
        lines.append(f"| {count.family} | {'→'.join(map(str, count.sizes))} | {count.unet_flops[count.sizes[-1]] / 1e12:.1f} | "
                     f"{ratios} | {_ratio(count.cascade_over_direct)} | {_ratio(count.cascade_over_hires)} |")
    return lines


def markdown(info: RunInfo, models: list[str], scenarios: list[ScenarioResult], training: list[TrainingResult],
             flops: list[FlopCount], memory: PeakMemory) -> str:
    header = f"Measured {info.date} on {info.device}; {info.machine}; {info.software}. `{info.command}`."
    if models:
        header += f" Models: {'; '.join(models)}."
    if scenarios:
        header += (f" {info.settings}. Median of {info.rounds} interleaved rounds after {info.warmup} warm-up; ratios "
                   "are medians of per-round ratios. Timings are ratios on one machine in one run: compare within "
                   "this table only.")
    lines = [f"### Benchmarks: {info.mode}", "", header, ""]
    if scenarios:
        lines += sampling_tables(scenarios, memory) + [""]
    if training:
        lines += training_table(training, memory) + [""]
    if flops:
        lines += [f"Counted, not timed: floating-point operations of the full-size random-weight UNets (fp16) on "
                  "the meta device (torch.utils.flop_counter: matrix products, convolutions, attention; element-wise "
                  f"work not counted), euler/normal, {flops[0].steps} base steps and {flops[0].stage_steps} per "
                  "high-resolution stage (K 0.7).", ""]
        lines += flops_table(flops) + [""]
    if memory.approximate and (scenarios or training):
        lines.append("CPU peak memory is the growth of the process's peak resident set over each arm (approximate: "
                     "allocator caching and reuse blur it), so no memory budget is checked on the CPU.")
    return "\n".join(lines) + "\n"


def scenario_as_dict(scenario: ScenarioResult) -> dict:
    """Every reading of one scenario, JSON-ready."""
    return {
        "family": scenario.models.family,
        "model": scenario.models.description,
        "sizes": list(scenario.work.sizes),
        "steps": scenario.work.steps,
        "tiled_decode": scenario.tiled_decode,
        "arms": {name: asdict(arm) for name, arm in scenario.arms.items()},
        "comparisons": [{**asdict(check), "verdict": check.verdict} for check in scenario.comparisons],
    }


def as_json(info: RunInfo, scenarios: list[ScenarioResult], training: list[TrainingResult], flops: list[FlopCount],
            memory: PeakMemory) -> str:
    document = {
        "info": asdict(info),
        "memory": {"unit": "bytes", "meaning": memory.meaning, "approximate": memory.approximate},
        "scenarios": [scenario_as_dict(scenario) for scenario in scenarios],
        "training": [asdict(result) for result in training],
        "flops": [asdict(count) for count in flops],
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def write(folder: Path, name: str, markdown_text: str, json_text: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table, readings = folder / f"{name}.md", folder / f"{name}.json"
    table.write_text(markdown_text, encoding="utf-8")
    readings.write_text(json_text, encoding="utf-8")
    return table, readings
