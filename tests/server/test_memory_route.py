"""``GET /selfcascade/plan`` with a loader's file on the real server: each stage's memory by the host's own estimates.

The module's server has a full-size SD1.5 checkpoint (UNet, text encoder and VAE in the released layout) and a
full-size SDXL diffusion model without a VAE, whose tensors are only in the header (the data is a sparse hole):
the route builds the host's model and VAE from the header on the meta device and never reads the data.
"""
from __future__ import annotations

import pytest
import requests
import torch

import comfy.model_base
import comfy.model_management
import comfy.supported_models
from harness import ComfyServer
from selfcascade.benchmarks.models import FULL_UNET
from selfcascade.benchmarks.real_layout import checkpoint_layout
from selfcascade.nodes.routes import detect_config
from selfcascade.sampling import memory
from selfcascade.sampling.plan import StageSize
from test_family_route import full_size, write_header_only

SD15 = "sd15_full.safetensors"
SDXL_UNET = "sdxl_unet.safetensors"
SDXL_VAE = "sdxl_vae.safetensors"


def vae_shapes() -> dict[str, torch.Tensor]:
    """An SD/SDXL VAE file's tensors (the host's AutoencoderKL at the released width), meta."""
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from selfcascade.benchmarks.models import FULL_VAE

    with torch.device("meta"):
        return AutoencoderKL(**FULL_VAE["params"]).state_dict()


def sd15_shapes() -> dict[str, torch.Tensor]:
    return {key: torch.empty(value.shape, dtype=torch.float16, device="meta")
            for key, value in checkpoint_layout("sd15").items()}


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    """Overrides the session server for this module (conftest's ``comfy`` client then talks to it)."""
    checkpoints, diffusion_models = tmp_path_factory.mktemp("checkpoints"), tmp_path_factory.mktemp("diffusion_models")
    vae = tmp_path_factory.mktemp("vae")
    write_header_only(checkpoints / SD15, sd15_shapes())
    write_header_only(vae / SDXL_VAE, vae_shapes())
    sdxl = full_size(comfy.supported_models.SDXL, FULL_UNET["sdxl"], comfy.model_base.SDXL)
    write_header_only(diffusion_models / SDXL_UNET, {key.removeprefix("model.diffusion_model."): value
                                                     for key, value in sdxl.items()})
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("comfy-memory"),
                                  model_paths={"checkpoints": str(checkpoints), "vae": str(vae),
                                               "diffusion_models": str(diffusion_models)}) as server:
        yield server


def plan(comfy, **query) -> dict:
    response = requests.get(f"{comfy.url}/selfcascade/plan", params=query, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_stage_gets_the_hosts_estimates_for_the_files_model(comfy):
    answer = plan(comfy, base_width=512, base_height=512, target_width=2048, target_height=2048,
                  loader="CheckpointLoaderSimple", file=SD15, pixel_pivots=1, final_decode=1, batch=2)
    shapes = sd15_shapes()
    config, prefix = detect_config(shapes, {})
    model, vae = memory.meta_model(config, shapes, prefix), memory.meta_vae(config, shapes)
    sizes = [StageSize(s["width"], s["height"]) for s in answer["stages"]]
    assert [(s.width, s.height) for s in sizes] == [(512, 512), (1024, 1024), (2048, 2048)]
    expected = memory.stage_memory(model, sizes, 8, batch=2, vae=vae, pixel_pivots=True, final_decode=True)
    summary = answer["memory"]
    assert summary["model"] == "sd15" and summary["dtype"] == str(model.model.get_dtype()).removeprefix("torch.")
    assert "VAE: the model file's own VAE" in summary["includes"] and "free on" in summary["free_is"]
    for stage, estimate in zip(answer["stages"], expected):
        assert stage["memory"] == estimate.as_dict(summary["free"])
    assert answer["stages"][0]["memory"]["sampling"] == int(model.model.memory_required([4, 4, 64, 64]))
    assert answer["stages"][2]["memory"]["vae_passes"] == ("pivot decode 1024x1024, pivot encode 2048x2048, "
                                                           "decode 2048x2048")


def test_a_budget_that_is_too_small_warns_per_stage_with_the_fix(comfy):
    answer = plan(comfy, base_width=512, base_height=512, target_width=2048, target_height=2048,
                  loader="CheckpointLoaderSimple", file=SD15, final_decode=1, memory_budget=6)
    memory_plan, stages = answer["memory"], answer["stages"]
    assert memory_plan["free"] == 6 << 30 and memory_plan["free_is"] == "memory_budget 6 GiB"
    assert [s["memory"]["fits"] for s in stages] == ["fits", "offloads", "no"]
    assert memory_plan["warnings"] == [f"stage 2 (2048x2048) will not fit: {stages[2]['memory']['advice']}"]
    assert "use VAE Decode (Tiled)" in stages[2]["memory"]["advice"]
    roomy = plan(comfy, base_width=512, base_height=512, scale_by=2, loader="CheckpointLoaderSimple", file=SD15,
                 memory_budget=1000)
    assert roomy["memory"]["warnings"] == [] and {s["memory"]["fits"] for s in roomy["stages"]} == {"fits"}


def test_a_diffusion_model_without_a_vae_and_the_server_device(comfy):
    answer = plan(comfy, base_width=1024, base_height=1024, scale_by=2, loader="UNETLoader", file=SDXL_UNET,
                  final_decode=1)
    summary = answer["memory"]
    assert summary["model"] == "sdxl" and "no VAE in the model file" in summary["includes"]
    assert all(s["memory"]["vae"] == 0 and s["memory"]["vae_passes"] == "" for s in answer["stages"])
    assert summary["free_is"] == f"free on {comfy_device()} now, with what loaded models hold"
    assert 0 < summary["free"]


def test_a_vae_file_of_the_graph_gives_the_vae_passes(comfy):
    answer = plan(comfy, base_width=1024, base_height=1024, scale_by=2, loader="UNETLoader", file=SDXL_UNET,
                  final_decode=1, pixel_pivots=1, vae_file=SDXL_VAE)
    vae = memory.meta_vae_file({k: v.to(torch.float16) for k, v in vae_shapes().items()})
    assert f"VAE: '{SDXL_VAE}'" in answer["memory"]["includes"]
    last = answer["stages"][-1]["memory"]
    assert last["vae"] == memory.decode_bytes(vae, (1, 4, 256, 256))  # the larger of its three passes
    assert last["vae_passes"] == "pivot decode 1024x1024, pivot encode 2048x2048, decode 2048x2048"
    missing = plan(comfy, base_width=1024, base_height=1024, loader="UNETLoader", file=SDXL_UNET, final_decode=1,
                   vae_file="taesdxl")
    assert "VAE passes not included ('taesdxl' is not in models/vae" in missing["memory"]["includes"]
    assert plan(comfy, base_width=1024, base_height=1024, loader="UNETLoader", file=SDXL_UNET,
                vae_file="v" * 2000)["error"] == "vae_file too long (limit 1024 characters)."


def comfy_device() -> str:
    return str(comfy.model_management.get_torch_device())  # the server runs on this machine's device, as the tests


@pytest.mark.parametrize("query, where, fragment", [
    ({"loader": "LoraLoader", "file": "x.safetensors"}, "error", "is not one whose file can be probed"),
    ({"loader": "CheckpointLoaderSimple", "file": "../x.safetensors"}, "memory", "is not in models/checkpoints"),
    ({"loader": "CheckpointLoaderSimple", "file": SD15, "batch": "0"}, "error", "batch = 0 is outside its limits"),
    ({"loader": "CheckpointLoaderSimple", "file": SD15, "memory_budget": "1e400"}, "error", "not a finite number"),
    ({"loader": "CheckpointLoaderSimple", "file": SD15, "length": "9" * 40}, "error", "too long for a number"),
    ({"loader": "SelfCascadeDemoModel"}, "memory", "not read from a file"),
])
def test_memory_questions_it_cannot_answer(comfy, query, where, fragment):
    answer = plan(comfy, base_width=512, base_height=512, **query)
    assert fragment in answer[where]["error"] if where == "memory" else fragment in answer["error"], answer
    assert plan(comfy, base_width=512, base_height=512, loader="CheckpointLoaderSimple", file=SD15)["memory"]["model"]


def test_without_a_base_size_memory_waits_for_it(comfy):
    answer = plan(comfy, loader="CheckpointLoaderSimple", file=SD15)
    assert answer["stages"] is None and "once the base size is known" in answer["memory"]["error"]


def test_an_upscale_plan_counts_its_encode_and_decode_which_tile_auto_handles(comfy):
    answer = plan(comfy, base_width=1024, base_height=1024, scale_by=2, upscale=1, loader="CheckpointLoaderSimple",
                  file=SD15, memory_budget=20)
    first, last = answer["stages"][0]["memory"], answer["stages"][-1]["memory"]
    assert first["vae_passes"] == "encode 1024x1024" and last["vae_passes"] == "decode 2048x2048"
    assert last["fits"] == "no" and "keep tile = auto (it tiles a pass that does not fit)" in last["advice"]
    assert answer["memory"]["warnings"][0].startswith("stage 1 (2048x2048) will not fit: ")
