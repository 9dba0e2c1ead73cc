"""Load/Apply Upsampler Adapter nodes in-process: the folder, the UI text, and a hand-built tuned cascade."""
from __future__ import annotations

import os

import pytest
import torch

import folder_paths
import nodes as core
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
from selfcascade.adapters.fileformat import AdapterError, save_adapter
from selfcascade.adapters.modules import new_adapter
from selfcascade.nodes.adapter_nodes import ADAPTER_FOLDER, ApplyUpsamplerAdapter, LoadUpsamplerAdapter
from selfcascade.nodes.cascade_nodes import PivotReschedule, SelfCascadeKSampler
from tiny_pack.models import build_conditioning, build_model

SEED, STEPS, CFG, K = 7, 5, 4.0, 0.7


@pytest.fixture
def adapter_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, ADAPTER_FOLDER, ([str(tmp_path)], set()))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return tmp_path


def trained_adapter(model):
    adapter = new_adapter(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in adapter.module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return adapter


def test_load_node_lists_the_folder_and_shows_the_metadata(adapter_folder):
    model = build_model("sdxl")
    save_adapter(adapter_folder / "tiny.safetensors", new_adapter(model))
    assert "tiny.safetensors" in LoadUpsamplerAdapter.define_schema().inputs[0].options
    output = LoadUpsamplerAdapter.execute("tiny.safetensors")
    text = output.ui.as_dict()["text"][0]
    assert "lite upsampler adapter for sdxl" in text and "injection: skip at input 3, input 6, input 8, middle" in text
    assert f"parameters: {output.result[0].parameter_count():,}" in text


def test_load_node_reloads_a_changed_file_and_names_a_missing_one(adapter_folder):
    model = build_model("sdxl")
    path = adapter_folder / "tiny.safetensors"
    save_adapter(path, new_adapter(model))
    first = LoadUpsamplerAdapter.fingerprint_inputs("tiny.safetensors")
    save_adapter(path, trained_adapter(model), overwrite=True)
    os.utime(path, ns=(1, 1))
    assert LoadUpsamplerAdapter.fingerprint_inputs("tiny.safetensors") != first
    with pytest.raises(AdapterError, match="'gone.safetensors' is not in models/upsampler_adapters"):
        LoadUpsamplerAdapter.execute("gone.safetensors")


def test_apply_node_refuses_an_adapter_for_another_family():
    sd15 = build_model("sd15")
    with pytest.raises(AdapterError, match="adapter for sdxl does not fit this sd15 model"):
        ApplyUpsamplerAdapter.execute(sd15, new_adapter(build_model("sdxl")), {"samples": torch.zeros(1, 4, 8, 8)},
                                      1.0, 0.0, 1.0)


def test_hand_built_tuned_cascade_equals_the_self_cascade_ksampler():
    model = build_model("sd15")
    adapter = trained_adapter(model)
    positive, negative = build_conditioning("sd15"), build_conditioning("sd15", seed=1)
    latent = {"samples": torch.zeros((1, 4, 8, 8))}
    ours = SelfCascadeKSampler.execute(
        model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", positive=positive,
        negative=negative, latent_image=latent, scale_by=2.0, target_width=0, target_height=0, k=K, later_k=0.0,
        upscale_method="bilinear", stage_steps=0, denoise=1.0, upsampler_adapter=adapter,
        adapter_strength=1.0).result[0]["samples"]

    (base,) = core.KSampler().sample(model, SEED, STEPS, CFG, "euler", "normal", positive, negative, latent)
    (upscaled,) = core.LatentUpscale().upscale(base, "bilinear", 128, 128, "disabled")
    stage_model = ApplyUpsamplerAdapter.execute(model, adapter, base, 1.0, 0.0, 1.0).result[0]
    sigmas = PivotReschedule.execute(model, "normal", STEPS, K, 0).result[0]
    sampler = KSamplerSelect.execute("euler").result[0]
    hand_built = SamplerCustom.execute(stage_model, True, SEED + 1, CFG, positive, negative, sampler, sigmas,
                                       upscaled).result[0]["samples"]
    untuned = SamplerCustom.execute(model, True, SEED + 1, CFG, positive, negative, sampler, sigmas,
                                    upscaled).result[0]["samples"]
    assert torch.equal(ours, hand_built)
    assert not torch.equal(hand_built, untuned)
