"""Degrade, never die: a host without the UNet helpers refuses the UNet adapters, and one whose Flux differs the
DiT adapters, and runs everything else; an adapter the host never applies is an error, not a tuning-free image
that looks tuned."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfyui_version
from comfy.ldm.modules.diffusionmodules import openaimodel
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
from selfcascade.adapters.fileformat import AdapterError, save_adapter
from selfcascade.adapters.injection import apply_upsampler_adapter, check_applied
from selfcascade.adapters.modules import DIT_LITE, new_adapter
from selfcascade.nodes import comfy_entrypoint
from selfcascade.nodes.adapter_nodes import ADAPTER_FOLDER, ApplyUpsamplerAdapter, LoadUpsamplerAdapter
from selfcascade.nodes.cascade_nodes import PivotReschedule, SelfCascadeKSampler
from tiny_pack.models import build_conditioning, build_model

TESTS = Path(__file__).resolve().parent.parent
HOST = f"ComfyUI {comfyui_version.__version__}"
SEED, STEPS, CFG, K = 7, 3, 4.0, 0.7
DIFFUSION_MODEL = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL


def trained(adapter):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in adapter.module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return adapter


def ksampler(model, adapter=None, strength: float = 1.0, family: str = "sd15") -> torch.Tensor:
    positive, negative = build_conditioning(family), build_conditioning(family, seed=1)
    output = SelfCascadeKSampler.execute(
        model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", positive=positive,
        negative=negative, latent_image={"samples": torch.zeros((1, 4, 8, 8))}, scale_by=2.0, target_width=0,
        target_height=0, k=K, later_k=0.0, upscale_method="bilinear", stage_steps=0, denoise=1.0,
        upsampler_adapter=adapter, adapter_strength=strength)
    return output.result[0]["samples"]


def node_ids(nodes) -> list[str]:
    return sorted(node.define_schema().node_id for node in nodes)


async def registered() -> list[str]:
    return node_ids(await (await comfy_entrypoint()).get_node_list())


def write_adapters(folder: Path) -> Path:
    """An untrained lite adapter for the tiny SD1.5 (unet.safetensors) and a dit-lite one for the tiny Flux
    (dit.safetensors) in ``folder``."""
    save_adapter(folder / "unet.safetensors", new_adapter(build_model("sd15")))
    save_adapter(folder / "dit.safetensors", new_adapter(build_model("flux"), DIT_LITE))
    return folder


@pytest.fixture
def adapter_folder(tmp_path, monkeypatch) -> Path:
    """The adapter folder Load Upsampler Adapter reads, holding ``write_adapters``' two files."""
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, ADAPTER_FOLDER, ([str(tmp_path)], set()))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return write_adapters(tmp_path)


def loaded_summary(adapter_name: str) -> str:
    return LoadUpsamplerAdapter.execute(adapter_name).ui.as_dict()["text"][0]


# --- the openaimodel helpers, looked up when an adapter is used


IMPORT_WITHOUT_HELPERS = """
import asyncio, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
adapters = sys.argv[3]
from _bootstrap import find_comfyui
sys.path.insert(0, str(find_comfyui()))
import torch
import comfy.cli_args
if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True
from comfy.ldm.modules.diffusionmodules import openaimodel
del openaimodel.forward_timestep_embed, openaimodel.timestep_embedding  # a host that renamed both
from _bootstrap import bootstrap
bootstrap()
import selfcascade
from selfcascade.adapters.fileformat import AdapterError
from selfcascade.nodes.adapter_nodes import ADAPTER_FOLDER, LoadUpsamplerAdapter
import folder_paths
folder_paths.add_model_folder_path(ADAPTER_FOLDER, adapters)
nodes = asyncio.run(asyncio.run(selfcascade.comfy_entrypoint()).get_node_list())
try:
    LoadUpsamplerAdapter.execute("unet.safetensors")
    refusal = None
except AdapterError as error:
    refusal = str(error)
dit = LoadUpsamplerAdapter.execute("dit.safetensors").ui.as_dict()["text"][0]
print(json.dumps({"nodes": sorted(node.define_schema().node_id for node in nodes), "refusal": refusal, "dit": dit}))
"""


def test_the_pack_imports_and_registers_every_node_on_a_host_without_the_helpers(tmp_path):
    result = subprocess.run([sys.executable, "-c", IMPORT_WITHOUT_HELPERS, str(TESTS), str(TESTS.parent / "scripts"),
                             str(write_adapters(tmp_path))],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    import asyncio
    assert answer["nodes"] == asyncio.run(registered())
    assert HOST in answer["refusal"] and "forward_timestep_embed, timestep_embedding" in answer["refusal"]
    assert answer["dit"].startswith("dit-lite upsampler adapter for flux")  # it needs none of the UNet helpers


@pytest.mark.parametrize("missing", ["forward_timestep_embed", "timestep_embedding", "UNetModel"])
def test_without_a_helper_the_adapter_nodes_refuse_naming_the_host_and_the_cascade_runs(monkeypatch, adapter_folder,
                                                                                        missing):
    model, flux = build_model("sd15"), build_model("flux")
    adapter = trained(new_adapter(model))
    tuning_free = ksampler(flux, family="flux")
    dit_adapter = trained(new_adapter(flux, DIT_LITE))
    tuned = ksampler(flux, dit_adapter, family="flux")
    monkeypatch.delattr(openaimodel, missing)  # the host's own UNet needs it too: a DiT shows the rest still runs
    refusal = (f"the upsampler adapters need {missing} from comfy.ldm.modules.diffusionmodules.openaimodel, which "
               f"{HOST} does not have: remove the adapter")
    with pytest.raises(AdapterError, match=refusal):
        ApplyUpsamplerAdapter.execute(model, adapter, {"samples": torch.zeros((1, 4, 8, 8))}, 1.0, 0.0, 1.0)
    with pytest.raises(AdapterError, match=refusal):
        LoadUpsamplerAdapter.execute("unet.safetensors")
    with pytest.raises(AdapterError, match=refusal):
        ksampler(model, adapter)
    assert torch.equal(ksampler(flux, family="flux"), tuning_free)  # everything without an adapter works as before
    assert loaded_summary("dit.safetensors").startswith("dit-lite upsampler adapter for flux")
    assert torch.equal(ksampler(flux, dit_adapter, family="flux"), tuned)  # and the DiT adapters, which need none


def test_a_host_whose_flux_differs_refuses_the_dit_adapters_at_load_and_runs_the_rest(monkeypatch, adapter_folder):
    import comfy.ldm.flux.model

    model, flux = build_model("sd15"), build_model("flux")
    adapter = trained(new_adapter(model))
    tuned, tuning_free = ksampler(model, adapter), ksampler(flux, family="flux")

    forward = comfy.ldm.flux.model.Flux._forward

    def renamed(self, x, timesteps, context, *args, **kwargs):  # a host whose Flux names its forward's inputs otherwise
        return forward(self, x, timesteps, context, *args, **kwargs)
    monkeypatch.setattr(comfy.ldm.flux.model.Flux, "_forward", renamed)
    with pytest.raises(AdapterError, match=rf"the DiT upsampler adapters need Flux's forward as .* in {HOST} "
                                           r"comfy.ldm.flux.model.Flux._forward takes \['x', 'timesteps'.*: remove the adapter"):
        LoadUpsamplerAdapter.execute("dit.safetensors")
    assert loaded_summary("unet.safetensors").startswith("lite upsampler adapter for sd15")
    assert torch.equal(ksampler(model, adapter), tuned)  # the UNet adapters need nothing of Flux
    assert torch.equal(ksampler(flux, family="flux"), tuning_free)


# --- an adapter the host does not apply


def drop_wrappers(monkeypatch, *kinds: str) -> None:
    """The host stops calling wrappers of ``kinds`` (all kinds when none is given)."""
    real = comfy.patcher_extension.get_all_wrappers

    def get_all_wrappers(wrapper_type, transformer_options, is_model_options=False):
        if not kinds or wrapper_type in kinds:
            return []
        return real(wrapper_type, transformer_options, is_model_options)
    monkeypatch.setattr(comfy.patcher_extension, "get_all_wrappers", get_all_wrappers)


def test_a_ksampler_stage_whose_wrapper_never_fires_is_an_error(monkeypatch):
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    drop_wrappers(monkeypatch, DIFFUSION_MODEL)
    with pytest.raises(AdapterError, match=(f"lite upsampler adapter for sd15 was connected but not applied in this "
                                            f"sampling run: its {DIFFUSION_MODEL} wrapper was never called by {HOST}, "
                                            "so the result would be tuning-free")):
        ksampler(model, adapter)


def test_a_ksampler_stage_on_a_host_that_calls_no_wrapper_at_all_is_an_error(monkeypatch):
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    drop_wrappers(monkeypatch)  # not even OUTER_SAMPLE: the stage loop's own check after the stage catches it
    with pytest.raises(AdapterError, match=(f"adapter for sd15 was connected but not applied in cascade stage 1: its "
                                            f"{DIFFUSION_MODEL} wrapper was never called by {HOST}")):
        ksampler(model, adapter)


def hand_built_stage(model, adapter, strength: float = 1.0, end_percent: float = 1.0):
    """Apply Upsampler Adapter + SamplerCustom with Pivot Reschedule, as a hand-built cascade's stage."""
    positive, negative = build_conditioning("sd15"), build_conditioning("sd15", seed=1)
    pivot = {"samples": torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(3))}
    stage_model = ApplyUpsamplerAdapter.execute(model, adapter, pivot, strength, 0.0, end_percent).result[0]
    sigmas = PivotReschedule.execute(model, "normal", STEPS, K, 0).result[0]
    sampler = KSamplerSelect.execute("euler").result[0]
    upscaled = {"samples": torch.nn.functional.interpolate(pivot["samples"], scale_factor=2.0, mode="bilinear")}
    return stage_model, lambda: SamplerCustom.execute(stage_model, True, SEED + 1, CFG, positive, negative, sampler,
                                                      sigmas, upscaled).result[0]["samples"]


def test_a_hand_built_stage_whose_output_patch_never_fires_is_an_error():
    model = build_model("sd15")
    stage_model, sample = hand_built_stage(model, trained(new_adapter(model)))
    sample()  # applied: no error
    stage_model.model_options["transformer_options"]["patches"].pop("output_block_patch")  # a host that skips it
    with pytest.raises(AdapterError, match="not applied in this sampling run: its output block patch was never called"):
        sample()


def test_a_stage_loop_catches_a_host_that_calls_no_wrapper_at_all(monkeypatch):
    model = build_model("sd15")
    stage_model, sample = hand_built_stage(model, trained(new_adapter(model)))
    drop_wrappers(monkeypatch)  # not even OUTER_SAMPLE, which checks inside the run
    sample()
    with pytest.raises(AdapterError, match=f"not applied in stage 1: its {DIFFUSION_MODEL} wrapper was never called"):
        check_applied(stage_model, "stage 1")


def test_an_adapter_off_by_choice_is_not_an_error():
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    _, sample = hand_built_stage(model, adapter, strength=0.0)
    sample()  # strength 0: the wrapper runs and adds nothing, as asked
    assert torch.equal(ksampler(model, adapter, strength=0.0), ksampler(model))
    _, sample = hand_built_stage(model, adapter, end_percent=0.1)  # a window that ends before the stage's K
    sample()
