"""The plan panel's memory plan: each stage's memory by ComfyUI's own estimate for the connected model, a warning
before queueing when a stage will not fit, and the measured peak of each stage in the run report.

The model is a full-size SD1.5 checkpoint whose tensors are only in its header (the data is a sparse hole: the plan
route reads the header alone). The device budget is the extension's setting (``SelfCascade.MemoryBudgetGiB``: plan
for a device of that many GiB instead of the server's free memory), so "will not fit" is forced the way a user
planning for a smaller card would, on any machine.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import torch

from frontend import EVERY_FRONTEND
from test_extension import panel_when

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from test_family_route import write_header_only  # noqa: E402

from selfcascade.benchmarks.real_layout import checkpoint_layout  # noqa: E402

BUDGET = "SelfCascade.MemoryBudgetGiB"
SD15 = "sd15_header_only.safetensors"


def set_budget(page, gib: float) -> None:
    page.evaluate("async ([id, value]) => { await window.comfyAPI.app.app.extensionManager.setting.set(id, value); }",
                  [BUDGET, gib])


def stage_line(plan: str, start: str) -> str:
    return next(line for line in plan.splitlines() if line.startswith(start))


def put_header_only_sd15(browsers) -> None:
    """A full-size SD1.5 checkpoint in the server's checkpoints folder whose data is never read (header only)."""
    checkpoint = Path(browsers._model_paths["checkpoints"]) / SD15
    if not checkpoint.exists():
        write_header_only(checkpoint, {key: torch.empty(value.shape, device="meta")
                                       for key, value in checkpoint_layout("sd15").items()})


@EVERY_FRONTEND
def test_the_panel_shows_each_stages_memory_and_warns_before_queueing_when_one_will_not_fit(page, browsers):
    put_header_only_sd15(browsers)
    try:
        set_budget(page, 1000)
        page.helper("build", {"nodes": [
            {"key": "ckpt", "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": SD15}},
            {"key": "text", "type": "CLIPTextEncode", "links": {"clip": ["ckpt", "CLIP"]}},
            {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 512, "height": 512}},
            {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"target_width": 1024, "target_height": 1024},
             "links": {"model": ["ckpt", "MODEL"], "positive": ["text", 0], "negative": ["text", 0],
                       "latent_image": ["latent", 0]}},
            {"key": "decode", "type": "VAEDecode", "links": {"samples": ["sampler", 0], "vae": ["ckpt", "VAE"]}},
        ]})
        sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
        plan = panel_when(page, sampler, "against 1000.0 GiB")
        assert stage_line(plan, "  base     512x512").endswith(" fits"), plan
        assert stage_line(plan, "  stage 1  1024x1024").endswith(" fits"), plan
        assert "ComfyUI's own estimates" in plan and "VAE: the model file's own VAE" in plan and "⚠" not in plan

        set_budget(page, 6)
        plan = panel_when(page, sampler, "⚠ won't fit")
        assert stage_line(plan, "  base     512x512").endswith(" fits"), plan
        assert stage_line(plan, "  stage 1  1024x1024").endswith("⚠ won't fit"), plan
        warning = stage_line(plan, "  ⚠ stage 1 (1024x1024) will not fit: ")
        assert "a VAE pass (decode 1024x1024)" in warning and "use VAE Decode (Tiled)" in warning, warning

        # what the frontend calls on every widget right before it queues (wired as the planner-error test shows)
        page.evaluate("(id) => window.comfyAPI.app.app.graph.getNodeById(id).widgets"
                      ".find((w) => w.name === 'cascade_plan').beforeQueued()", sampler)
        deadline = time.monotonic() + 10
        while not any("will not fit in memory" in toast for toast in page.helper("toasts")) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        toasts = page.helper("toasts")
        assert any("will not fit in memory" in toast and "stage 1 (1024x1024)" in toast for toast in toasts), toasts
    finally:
        set_budget(page, 0)


@EVERY_FRONTEND
def test_the_vae_loader_behind_the_decode_is_the_vae_asked_about(page, browsers):
    put_header_only_sd15(browsers)
    page.helper("watchRequests")
    page.helper("build", {"nodes": [
        {"key": "ckpt", "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": SD15}},
        {"key": "vae", "type": "VAELoader", "widgets": {"vae_name": "missing_vae.safetensors"}},
        {"key": "text", "type": "CLIPTextEncode", "links": {"clip": ["ckpt", "CLIP"]}},
        {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 512, "height": 512, "batch_size": 3}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"target_width": 1024, "target_height": 1024},
         "links": {"model": ["ckpt", "MODEL"], "positive": ["text", 0], "negative": ["text", 0],
                   "latent_image": ["latent", 0]}},
        {"key": "decode", "type": "VAEDecode", "links": {"samples": ["sampler", 0], "vae": ["vae", 0]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    panel_when(page, sampler, "VAE passes not included ('missing_vae.safetensors' is not in models/vae")
    asked = [parse_qs(urlparse(route).query) for route in page.helper("requests")
             if route.startswith("/selfcascade/plan")]
    assert asked[-1]["vae_file"] == ["missing_vae.safetensors"] and asked[-1]["batch"] == ["3"], asked[-1]
    assert asked[-1]["final_decode"] == ["1"] and "pixel_pivots" not in asked[-1]


@EVERY_FRONTEND
def test_the_run_report_shows_each_stages_measured_peak(page):
    page.helper("build", {"nodes": [
        {"key": "model", "type": "TinyModelLoader", "widgets": {"family": "sd15"}},
        {"key": "cond", "type": "TinyConditioning", "widgets": {"family": "sd15"}},
        {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 64, "height": 64}},
        {"key": "sampler", "type": "SelfCascadeKSampler",  # a new seed: not an earlier variant's cached result
         "widgets": {"steps": 2, "scale_by": 2, "seed": time.time_ns() % 2**32},
         "links": {"model": ["model", 0], "positive": ["cond", 0], "negative": ["cond", 0],
                   "latent_image": ["latent", 0]}},
        {"key": "save", "type": "SaveLatent", "links": {"samples": ["sampler", 0]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    panel_when(page, sampler, "stage 1")
    page.helper("runButton")
    report = panel_when(page, sampler, "Last run:", timeout_s=60)
    stage_lines = [line.strip() for line in report.splitlines() if line.strip().startswith(("base:", "stage 1:"))]
    assert len(stage_lines) == 2 and all("; peak " in line for line in stage_lines), report
