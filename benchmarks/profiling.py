"""Where the time goes when the overhead budget is missed: cProfile of the node against the core-node graph.

Both run the same host sampling calls, so their profiles should differ only in the few functions
that build the cascade (plan, schedule cut, latent checks, progress) against the core nodes' own;
the report lists each arm's call count, its time outside UNet calls, and its most expensive
functions by own time.
"""
from __future__ import annotations

import cProfile
import io
import pstats

import torch

from .measure import SamplingProbe, Stopwatch
from .models import ModelSet
from .workloads import CORE_GRAPH, TUNING_FREE, Arm, Workload, cascade_node, core_graph

TOP_FUNCTIONS = 15


def profile_arm(probe: SamplingProbe, arm: Arm, models: ModelSet, work: Workload) -> str:
    probe.take()
    profiler = cProfile.Profile()
    with torch.inference_mode():
        profiler.enable()
        arm(probe.model, models, work)
        profiler.disable()
    reading = probe.take()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    stats.sort_stats(pstats.SortKey.TIME).print_stats(TOP_FUNCTIONS)
    return (f"UNet calls {reading.unet_seconds:.3f} s ({reading.unet_calls} calls); outside them "
            f"{stats.total_tt - reading.unet_seconds:.3f} s\n{stats.stream.getvalue()}")


def overhead_profile(models: ModelSet, work: Workload, device: torch.device) -> str:
    """One profiled run of each arm after one unprofiled warm-up run."""
    probe = SamplingProbe(models.model, Stopwatch(device))
    sections = [f"## {models.family} {work.label()} px, {work.steps} steps\n"]
    for name, arm in ((TUNING_FREE, cascade_node), (CORE_GRAPH, core_graph)):
        with torch.inference_mode():
            arm(probe.model, models, work)
        sections.append(f"### {name}\n{profile_arm(probe, arm, models, work)}")
    return "\n".join(sections)
