"""The memory plan's estimates are the host's own numbers, for full-size SD1.5, SDXL, Flux and Wan on the meta
device (no weights), and a stage's measured peak is what the device reports."""
from __future__ import annotations

import gc
import json
import sys

import pytest
import torch

import comfy.model_management
import comfy.sampler_helpers

from selfcascade.benchmarks import memory_plan
from selfcascade.benchmarks.real_layout import checkpoint_layout
from selfcascade.nodes.routes import detect_config
from selfcascade.sampling import memory
from selfcascade.sampling.plan import StageSize

# diffusion-model parameters of the released files (v1-5-pruned-emaonly, sd_xl_base_1.0, flux1-dev, wan2.1 t2v 14B)
RELEASED_PARAMETERS = {"sd15": 859_520_964, "sdxl": 2_567_463_684, "flux": 11_901_408_320, "wan": 14_288_491_584}


@pytest.fixture(scope="module", params=memory_plan.FAMILIES)
def family_model(request):
    return request.param, memory_plan.meta_family_model(request.param), memory_plan.meta_family_vae(request.param)


def test_the_meta_models_are_the_real_architectures(family_model):
    family, model, _ = family_model
    assert all(p.device.type == "meta" for p in model.model.parameters())
    assert sum(p.numel() for p in model.model.diffusion_model.parameters()) == RELEASED_PARAMETERS[family]


@pytest.mark.parametrize("side", memory_plan.SIDES)
def test_estimates_are_the_hosts_own_numbers(family_model, side):
    family, model, vae = family_model
    channels = model.get_model_object("latent_format").latent_channels
    latent = (1, channels, 1, side // 8, side // 8) if family == "wan" else (1, channels, side // 8, side // 8)
    (stage,) = memory.stage_memory(model, [StageSize(side, side)], 8, vae=vae, final_decode=True)
    doubled = [2, *latent[1:]]  # CFG: the host's sampler runs the positive and negative prompts as one batch
    assert stage.sampling == int(model.model.memory_required(doubled))
    assert stage.sampling == int(comfy.sampler_helpers.estimate_memory(model, latent, {})[0])
    assert stage.weights == comfy.model_management.module_size(model.model) == model.model_size()
    assert stage.vae_pass == int(vae.memory_used_decode(latent, vae.vae_dtype))
    assert stage.vae_weights == comfy.model_management.module_size(vae.first_stage_model)
    assert stage.peak == max(stage.sampling + stage.weights, stage.vae_pass + stage.vae_weights)


def test_the_committed_table_is_what_the_host_estimates_here():
    """benchmarks/results/memory-plan.json (the docs' table) equals a rerun on a device of the same kind."""
    import comfyui_version

    committed = json.loads(memory_plan.RESULTS.read_text())
    if committed["info"]["device"] != str(comfy.model_management.get_torch_device()):
        pytest.skip(f"the table was made on {committed['info']['device']}")
    if committed["info"]["comfyui"] != comfyui_version.__version__:  # hosts change their formulas (0.33: Wan's VAE)
        pytest.skip(f"the table was made on ComfyUI {committed['info']['comfyui']}, this host is {comfyui_version.__version__}")
    rows = [row for family in memory_plan.FAMILIES for row in memory_plan.estimates(family)]
    assert rows == committed["rows"]


def test_stage_passes_and_verdicts():
    model, vae = memory_plan.meta_family_model("sd15"), memory_plan.meta_family_vae("sd15")
    stages = [StageSize(512, 512), StageSize(1024, 1024), StageSize(2048, 2048)]
    plan = memory.stage_memory(model, stages, 8, vae=vae, pixel_pivots=True, final_decode=True)
    assert [s.vae_what for s in plan] == ["", "pivot decode 512x512, pivot encode 1024x1024",
                                          "pivot decode 1024x1024, pivot encode 2048x2048, decode 2048x2048"]
    assert plan[0].vae_total == 0 and plan[2].vae_pass == memory.decode_bytes(vae, (1, 4, 256, 256))
    assert plan[1].sampling == pytest.approx(4 * plan[0].sampling, abs=4)  # the host's formula grows with the latent's area
    last = plan[2]
    assert last.verdict(last.peak) == "fits" and last.advice(last.peak) == ""
    assert last.verdict(last.peak - 1) == "offloads" and "part of the weights" in last.advice(last.peak - 1)
    assert last.verdict(last.sampling - 1) == "no" and "smaller target or fewer stages" in last.advice(last.sampling - 1)
    vae_bound = memory.StageMemory(10, 10, vae_pass=100, vae_weights=1, vae_what="decode 4096x4096",
                                   vae_fix="use VAE Decode (Tiled)")
    assert vae_bound.verdict(50) == "no" and "use VAE Decode (Tiled)" in vae_bound.advice(50)
    assert vae_bound.advice(50).startswith("a VAE pass (decode 4096x4096) needs") and "sampling" not in vae_bound.advice(50)


def test_the_route_builds_the_model_and_vae_the_checkpoint_loader_would():
    """From a checkpoint's header alone (meta tensors): the host's config, its dtype choice, the file's VAE."""
    shapes = {key: torch.empty(value.shape, dtype=torch.float16, device="meta")
              for key, value in checkpoint_layout("sd15").items()}
    config, prefix = detect_config(shapes, {})
    model, vae = memory.meta_model(config, shapes, prefix), memory.meta_vae(config, shapes)
    expected = comfy.model_management.unet_dtype(model_params=RELEASED_PARAMETERS["sd15"],
                                                 supported_dtypes=list(config.supported_inference_dtypes),
                                                 weight_dtype=torch.float16)
    assert model.model.get_dtype() == expected
    assert sum(p.numel() for p in vae.first_stage_model.parameters()) == 83_653_863  # the released VAE
    assert memory.meta_vae(config, {k: v for k, v in shapes.items() if not k.startswith("first_stage_model.")}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS is read from Linux's /proc")
def test_peak_meter_sees_a_stages_allocation_on_the_cpu():
    meter = memory.PeakMeter(torch.device("cpu"))
    assert meter.available and meter.unavailable_note == ""
    # memory the process returns between the baseline and the allocation (earlier tests' garbage, other threads')
    # hides part of it: tens of MiB were seen in the full suite, so the block is large against that
    gc.collect()
    meter.start()
    block = torch.ones(256 << 20, dtype=torch.float32)  # 1 GiB, touched
    del block
    peak = meter.peak()
    assert 768 << 20 <= peak < 2 << 30
    assert meter.words(peak).startswith("peak RSS +") and "," not in meter.words(peak)
