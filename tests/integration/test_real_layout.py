"""Real-layout checkpoints (benchmarks/real_layout.py): the released layouts, deterministic bytes, and detection by
ComfyUI's own loader; the official upsampler file read by the pack's strict reader."""
from __future__ import annotations

import hashlib
import logging

import pytest
import safetensors.torch
import torch

import comfy.model_management
import comfy.sd

from selfcascade.adapters.fileformat import OFFICIAL_SDXL_PARAMETERS, load_adapter
from selfcascade.adapters.modules import OFFICIAL_SDXL_POINTS
from selfcascade.benchmarks import real_layout

# tensor elements per part of the released checkpoints (v1-5-pruned-emaonly, sd_xl_base_1.0): UNet, text
# encoders (SDXL: CLIP-L with its 77 position ids, OpenCLIP bigG with its logit scale), VAE
RELEASED_ELEMENTS = {
    "sd15": {"model.diffusion_model.": 859_520_964, "cond_stage_model.": 123_060_480, "first_stage_model.": 83_653_863},
    "sdxl": {"model.diffusion_model.": 2_567_463_684, "conditioner.embedders.": 817_720_398,
             "first_stage_model.": 83_653_863},
}
SHAPES = {
    "sd15": {"model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),  # SD1.x: convolution
             "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
             "first_stage_model.decoder.mid.attn_1.q.weight": (512, 512, 1, 1)},
    "sdxl": {"model.diffusion_model.input_blocks.4.1.proj_in.weight": (640, 640),  # SDXL: linear
             "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
             "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
             "conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072)},
}
# what ComfyUI's loader says about a checkpoint that is not exactly a model's layout
LAYOUT_COMPLAINTS = ("unet missing", "unet unexpected", "Missing VAE keys", "Leftover VAE keys", "left over keys",
                     "clip unexpected")
# ComfyUI saves (and the released SD1.5 holds) no CLIP-L logit scale or projection: its loader says so at debug level
SD15_CLIP_MISSING = "clip missing: ['clip_l.logit_scale', 'clip_l.transformer.text_projection.weight']"


@pytest.mark.parametrize("family", real_layout.FAMILIES)
def test_layout_is_the_released_checkpoints_key_layout(family):
    layout = real_layout.checkpoint_layout(family)
    for prefix, elements in RELEASED_ELEMENTS[family].items():
        assert sum(t.numel() for key, t in layout.items() if key.startswith(prefix)) == elements
    assert all(key.startswith(tuple(RELEASED_ELEMENTS[family])) for key in layout)
    for key, shape in SHAPES[family].items():
        assert tuple(layout[key].shape) == shape
    if family == "sdxl":
        assert torch.equal(layout["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"],
                           torch.arange(77)[None])


def test_official_adapter_layout_is_the_released_upsampler_only_pth():
    layout = real_layout.official_adapter_layout()
    assert len(layout) == 4 * 2 * 10 and sum(t.numel() for t in layout.values()) == OFFICIAL_SDXL_PARAMETERS
    assert tuple(layout["unet.feature_upsampler0.0.in_layers.2.weight"].shape) == (320, 320, 3, 3)
    assert tuple(layout["unet.feature_upsampler3.1.emb_layers.1.weight"].shape) == (1280, 1280)


def test_random_weights_depend_on_the_seed_and_the_key_only():
    like = torch.empty((64, 32, 3, 3), device="meta")
    first = real_layout.random_tensor("a.weight", like, seed=0)
    assert first.dtype == torch.float16 and abs(float(first.float().std()) - real_layout.STD) < 0.001
    assert torch.equal(first, real_layout.random_tensor("a.weight", like, seed=0))
    assert not torch.equal(first, real_layout.random_tensor("a.weight", like, seed=1))
    assert not torch.equal(first, real_layout.random_tensor("b.weight", like, seed=0))


def test_same_seed_gives_the_same_bytes(tmp_path):
    layout = {key: tensor for key, tensor in real_layout.checkpoint_layout("sdxl").items()
              if key.startswith("first_stage_model.decoder.mid.")}
    layout["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    digests = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        path = tmp_path / f"{name}.safetensors"
        real_layout.write_random_safetensors(path, layout, seed, {"note": "test"})
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]
    loaded = safetensors.torch.load_file(tmp_path / "c.safetensors")
    assert loaded.keys() == layout.keys()
    for key, like in layout.items():
        assert torch.equal(loaded[key], real_layout.random_tensor(key, like, 1))


@pytest.mark.slow
def test_generated_sd15_checkpoint_loads_through_comfyuis_loader_as_sd15(caplog):
    path = real_layout.ensure_checkpoint("sd15")
    keys = ["model.diffusion_model.out.2.weight", "first_stage_model.encoder.conv_in.bias"]
    layout = real_layout.checkpoint_layout("sd15")
    with safetensors.safe_open(str(path), framework="pt") as handle:  # the cached file is the seed's
        assert all(torch.equal(handle.get_tensor(key), real_layout.random_tensor(key, layout[key], 0)) for key in keys)
    with caplog.at_level(logging.DEBUG):
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path))
    try:
        assert type(model.model.model_config).__name__ == "SD15"
        assert type(clip.cond_stage_model).__name__ == "SD1ClipModel" and vae.latent_channels == 4
        assert sum(p.numel() for p in model.model.diffusion_model.parameters()) == 859_520_964
        complaints = [r.getMessage() for r in caplog.records
                      if any(text in r.getMessage() for text in LAYOUT_COMPLAINTS + ("clip missing",))]
        assert complaints == [SD15_CLIP_MISSING]
        context = clip.encode_from_tokens_scheduled(clip.tokenize("a cabin"))[0][0]
        assert context.shape == (1, 77, 768) and torch.isfinite(context).all()
    finally:
        del model, clip, vae
        comfy.model_management.unload_all_models()


def test_generated_official_adapter_reads_as_the_official_sdxl_upsamplers():
    adapter = load_adapter(real_layout.ensure_official_adapter())  # torch.load(weights_only=True), strict
    spec = adapter.spec
    assert (spec.variant, spec.injection, spec.channels, spec.emb_dim) == ("official-sdxl", "backbone",
                                                                            (320, 640, 1280, 1280), 1280)
    assert spec.points == OFFICIAL_SDXL_POINTS and adapter.parameter_count() == OFFICIAL_SDXL_PARAMETERS
    assert all(bool(block.out_layers[3].weight.abs().sum() > 0)  # released: zero at init; here it must act
               for upsampler in adapter.module.upsamplers for block in upsampler)
