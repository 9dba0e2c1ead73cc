"""The full-size README block says what the readings say: each ratio beside its predictions, met or missed by how much."""
from __future__ import annotations

from selfcascade.benchmarks import readme

COUNTS = readme.load(readme.RESULTS / "full-size-flops.json")["flops"]
REFERENCE = next(c for c in COUNTS if c["family"] == "sdxl" and c["sizes"] == [1024, 2048])["adapter_ratio"]


def check(name: str, ratio: float, budget=None) -> dict:
    verdict = "—" if budget is None else "ok" if ratio <= budget else "MISSED"
    return {"check": name, "ratio": ratio, "budget": budget, "per_round": [ratio - 0.01, ratio, ratio + 0.02],
            "verdict": verdict}


def arm(peak_mib: int) -> dict:
    return {"sample_s": [2.0], "unet_s": [1.9], "high_res_s": [1.0], "decode_s": [], "peak_bytes": peak_mib * 2**20,
            "unet_calls": 5}


def document(official: float) -> dict:
    sdxl_arms = {"Self-Cascade KSampler": arm(300), "cascade + lite adapter": arm(310),
                 "cascade + official-sdxl adapter": arm(900), "direct at target": arm(320)}
    sd15_arms = {"Self-Cascade KSampler": arm(2000), "core-node graph": {**arm(2000), "sample_s": [1.95]},
                 "direct at target": arm(2100)}
    sd15 = {"family": "sd15", "detected_config": "SD15", "scenario": {
        "sizes": [256, 512], "steps": 3, "arms": sd15_arms, "comparisons": [
            check("cascade / core-node graph, sampling", 1.01, 1.02),
            check("… with its UNet time set to the graph's", 1.0, 1.02),
            check("cascade / direct at target, sampling", 0.9)]},
        "predicted": {"adapter_ratio": {"lite": 1.07}, "cascade_over_direct": 0.891, "stage_steps": 2,
                      "unet_flops": {"256": 0.36e12, "512": 1.6e12}}}
    return {
        "info": {"mode": "full-size-cpu", "command": "python benchmarks/run.py --full-size", "date": "2026-11-29",
                 "machine": "2 cores", "device": "CPU, 1 torch thread(s)", "software": "torch", "clock": "CPU time",
                 "rounds": 3, "warmup": 0, "settings": "euler/normal, 3 base steps", "seed": 0},
        "memory": {"unit": "bytes", "meaning": "RSS growth"},
        "families": [sd15, {
            "family": "sdxl", "detected_config": "SDXL",
            "adapters": {"official-sdxl": {"parameters": 145_457_280}},
            "injection": {"px": 128, "expected": ["input 3", "input 6", "input 8", "middle"],
                          "max_abs_change": {"input 2": 0.0, "input 3": 0.2, "input 6": 0.4, "input 8": 1.0,
                                             "middle": 1.1}},
            "profile_cpu_s": {"tuning-free": 10.0, "official adapter": 12.0, "pivot pass": 1.4, "adapter modules": 0.5,
                              "weight casts": 0.1, "backbone additions": 0.01, "output block 0 addition": 0.01},
            "scenario": {"sizes": [256, 512], "steps": 3, "arms": sdxl_arms, "comparisons": [
                check("high-res stages, lite / tuning-free", 1.13, 1.15),
                check("high-res stages, official-sdxl / tuning-free", official, 1.15),
                check("cascade / direct at target, sampling", 0.95)]},
            "predicted": {"adapter_ratio": {"lite": 1.118, "official-sdxl": 1.166}, "cascade_over_direct": 0.936,
                          "stage_steps": 2, "unet_flops": {"256": 0.9e12, "512": 3.2e12}}}],
        "operation_shares": {"sd15": {size: {"attention": 0.1, "convolution": 0.6, "linear": 0.3}
                                      for size in ("256", "512", "1024", "2048")},
                             "sdxl": {size: {"attention": share, "convolution": 0.25, "linear": 0.75 - share}
                                      for size, share in (("256", 0.012), ("512", 0.035), ("1024", 0.116),
                                                          ("2048", 0.339))}},
        "workflows": [{"workflow": "sdxl_tuned_official_adapter", "checkpoint": "sdxl.safetensors", "native_px": 1024,
                       "stages": ["base: 256x256, 3 steps", "stage 1: 512x512, K 0.70, 2 steps"],
                       "image_size": [512, 512], "seconds": 300.0, "adapter": "official-sdxl upsampler adapter",
                       "adapter_changes_output": 0.002, "latent_max": 3.0, "base_only_equal": True,
                       "changes": ["SelfCascadeKSampler steps: 30 → 3"]}],
    }


def test_a_missed_adapter_budget_says_by_how_much_and_estimates_full_size():
    block = readme.full_size_block(document(1.19), COUNTS)
    assert (f"| sdxl | 256→512 | high-res stage, official / tuning-free | 1.190 (1.180–1.210) | 1.166 | "
            f"{REFERENCE['official-sdxl']:.3f} | ≤ 1.15 ✗ |") in block
    assert "misses the 1.15 budget by 0.040" in block
    assert f"estimates {REFERENCE['official-sdxl'] + 1.19 - 1.166:.3f}x at full size" in block
    assert "the pivot pass is 14.0% of a tuning-free call" in block
    assert "| sdxl | 320 | 300 | 310 | 900 |" in block and "| sd15 | 2100 | 2000 | — | — |" in block
    assert "sdxl 3.5% at 512² (11.6% at 1024², 33.9% at 2048²)" in block


def test_cascade_over_direct_is_explained_by_the_rate_at_each_size():
    block = readme.full_size_block(document(1.19), COUNTS)
    # base calls: (1.9 - 1.0) / 3 steps = 0.3 s for 0.9 TFLOP; target calls: 1.9 / 5 calls = 0.38 s for 3.2 TFLOP
    assert "the 256² calls ran at 3000 GFLOP/s and the 512² calls at 8421 GFLOP/s" in block
    assert "why 0.950 is measured against 0.936 counted" in block


def test_overhead_rows_and_their_explanation():
    block = readme.full_size_block(document(1.19), COUNTS)
    assert ("| sd15 | 256→512 | node / core-node graph, UNet time equalised | 1.000 (0.990–1.020) | 1.000 | 1.000 "
            "| ≤ 1.02 ✓ |") in block
    assert "outside them the node spent 0.100 CPU-s and the graph 0.050 against 2 in UNet calls" in block


def test_a_met_budget_and_the_workflow_checks_are_reported():
    block = readme.full_size_block(document(1.12), COUNTS)
    assert "it meets the 1.15 budget" in block and "≤ 1.15 ✓ |" in block
    assert "after exactly input 3, input 6, input 8, middle (expected: input 3, input 6, input 8, middle)" in block
    assert "a base-only run was bit-identical" in block
    assert "| `sdxl_tuned_official_adapter` | `sdxl.safetensors` | 1024² | base: 256x256, 3 steps; stage 1" in block


def test_the_results_page_lists_every_edit_of_the_shipped_workflow():
    page = readme.full_size_markdown(document(1.19))
    assert "`workflows/api/sdxl_tuned_official_adapter.json` as run (300 s):\n\n- SelfCascadeKSampler steps: 30 → 3" in page
    assert "| sdxl | high-res stages, official-sdxl / tuning-free | 1.180, 1.190, 1.210 | 1.190 | ≤ 1.15 ✗ |" in page


def test_a_run_without_sd15_says_where_sd15_is_still_exercised():
    sdxl_only = document(1.19)
    sdxl_only["families"] = sdxl_only["families"][1:]
    del sdxl_only["operation_shares"]["sd15"]  # a run counts the shares of its own families
    block = readme.full_size_block(sdxl_only, COUNTS)
    assert "SD1.5 is not timed in this run" in block and "tests/server/test_real_layout_workflows.py" in block
    assert "| sd15 |" not in block
    assert "SD1.5 is not timed" not in readme.full_size_block(document(1.19), COUNTS)
