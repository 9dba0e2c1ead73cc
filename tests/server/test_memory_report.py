"""The run report through the real server gives each stage's measured peak memory (here: the server process's peak
RSS growth on a Linux CPU; on a GPU the CUDA peak allocation, as sampling/memory.PeakMeter reads it)."""
from __future__ import annotations

import re
import sys

import pytest

from cascade_graphs import cascade_node, tiny_inputs
from harness import Graph

PEAK = re.compile(r"; peak RSS \+(\d+) MiB$")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is read from Linux's /proc")
def test_every_stage_line_ends_with_its_measured_peak(comfy):
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), scale_by=4.0)
    g.node("SaveLatent", samples=sampler, filename_prefix="memory_report")
    lines = comfy.run(g).text(sampler.id).splitlines()
    stages = [line for line in lines if line.startswith(("base:", "stage "))]
    assert [line.split(",")[0] for line in stages] == ["base: 64x64", "stage 1: 128x128", "stage 2: 256x256"]
    peaks = [PEAK.search(line) for line in stages]
    assert all(peaks), stages
    assert all(int(peak.group(1)) < 4096 for peak in peaks)  # tiny models: a few MiB, not the process's whole RSS
    assert not any("not measured" in line for line in lines)
