"""The benchmark CLI runs end to end in both modes and writes its table and readings (no timing is asserted).

Each run is a subprocess: the benchmark sets process-wide state (torch threads, CUDA visibility) that
the rest of the suite must not inherit. The GPU mode runs on the CPU at the tiny size override: its
whole code path (probes, tiled decode, training) except CUDA events and torch.cuda memory counters,
which need a GPU.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfcascade.benchmarks.flops import count_flops
from selfcascade.benchmarks.models import full_unet
from selfcascade.benchmarks.workloads import Workload

REPO = Path(__file__).resolve().parents[2]
SHORT = ["--rounds", "1", "--warmup", "0", "--train-steps", "1"]
SAMPLING_ARMS = ["Self-Cascade KSampler", "core-node graph", "direct at target", "hires fix (2 pass)"]
ADAPTER_ARMS = ["cascade + lite adapter", "cascade + official-sdxl adapter"]


def run_benchmark(out: Path, *args: str) -> tuple[str, dict]:
    command = [sys.executable, str(REPO / "benchmarks" / "run.py"), *args, *SHORT, "--out", str(out), "--name", "result"]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return (out / "result.md").read_text(encoding="utf-8"), json.loads((out / "result.json").read_text(encoding="utf-8"))


def assert_rows(table: str, readings: dict, family: str, sizes: str, arms: list[str]) -> None:
    for arm in arms:
        assert f"| {family} | {sizes} | {arm} |" in table
    scenario = next(s for s in readings["scenarios"] if s["family"] == family and "→".join(map(str, s["sizes"])) == sizes)
    assert list(scenario["arms"]) == arms
    assert all(len(arm["sample_s"]) == 1 and arm["unet_calls"] > 0 for arm in scenario["arms"].values())
    checks = {c["check"] for c in scenario["comparisons"]}
    assert {"cascade / core-node graph, sampling", "cascade / direct at target, peak memory"} <= checks


def assert_training(table: str, readings: dict, crop: int) -> None:
    assert [(t["variant"], t["resolution"]) for t in readings["training"]] == [("lite", crop), ("official-sdxl", crop)]
    assert all(t["error"] is None and t["steps_per_second"] > 0 for t in readings["training"])
    assert f"| sdxl | official-sdxl | 1.459M | {crop} | 1 |" in table


@pytest.mark.slow
def test_cpu_smoke_writes_table_and_readings(tmp_path):
    table, readings = run_benchmark(tmp_path, "--cpu-smoke", "--profile")
    assert readings["info"]["device"].startswith("CPU") and readings["memory"]["approximate"]
    profile = (tmp_path / "result-profile.txt").read_text(encoding="utf-8")
    assert profile.count("### Self-Cascade KSampler\nUNet calls") == profile.count("### core-node graph\nUNet calls") == 2
    assert_rows(table, readings, "sd15", "64→128", SAMPLING_ARMS)
    assert_rows(table, readings, "sdxl", "32→64→128", SAMPLING_ARMS[:2] + ADAPTER_ARMS + SAMPLING_ARMS[2:])
    assert_training(table, readings, 64)


@pytest.mark.slow
def test_gpu_mode_runs_on_the_cpu_at_tiny_size(tmp_path):
    table, readings = run_benchmark(tmp_path, "--gpu", "--device", "cpu", "--size-override", "tiny", "--families", "sdxl",
                                    "--steps", "2", "--decode", "tiled", "--train-crops", "1024")
    arms = SAMPLING_ARMS[:2] + ADAPTER_ARMS + SAMPLING_ARMS[2:]
    assert_rows(table, readings, "sdxl", "64→128", arms)  # stands for 1024→2048
    assert_rows(table, readings, "sdxl", "64→128→256", arms)  # stands for 1024→2048→4096
    assert all(s["tiled_decode"] for s in readings["scenarios"])
    assert_training(table, readings, 64)


def test_full_size_unets_have_the_real_checkpoints_parameter_counts():
    # SD1.5 and SDXL base UNets as released: 859,520,964 and 2,567,463,684 parameters
    for family, parameters in (("sd15", 859_520_964), ("sdxl", 2_567_463_684)):
        unet = full_unet(family, torch.float16, torch.device("meta")).diffusion_model
        assert sum(p.numel() for p in unet.parameters()) == parameters
        assert {p.dtype for p in unet.parameters()} == {torch.float16}


def test_flop_count_of_a_full_size_cascade():
    count = count_flops("sd15", Workload((1024, 2048), steps=20))
    assert count.stage_steps == 14  # K = 0.7 keeps 14 of 20 normal steps
    assert count.unet_flops[2048] > 4 * count.unet_flops[1024]  # 4x the pixels, and attention grows faster
    assert 1.0 < count.adapter_ratio["lite"] < 1.15  # the pivot pass at a quarter of the pixels, plus phi
    expected = (20 * count.unet_flops[1024] + 14 * count.unet_flops[2048]) / (20 * count.unet_flops[2048])
    assert count.cascade_over_direct == expected < 1.0
