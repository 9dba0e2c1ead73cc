"""Model-family facts against the real host: every model config it ships is covered, guesses are said,
a connected VAE decides the latent factor, and pixel-space models are sized in pixels."""
from __future__ import annotations

import pytest
import torch

import comfy.model_base
import comfy.model_patcher
import comfy.supported_models
import comfy.sd
import comfy.supported_models_base
from comfy.ldm.models.autoencoder import AutoencoderKL
from comfy_extras.nodes_cosmos import EmptyCosmosLatentVideo
from comfy_extras.nodes_hunyuan import EmptyHunyuanLatentVideo
from comfy_extras.nodes_lt import EmptyLTXVLatentVideo
from comfy_extras.nodes_mochi import EmptyMochiLatentVideo
from selfcascade.nodes.cascade_nodes import SelfCascadeBaseLatent, SelfCascadeKSampler
from selfcascade.sampling.families import (BY_CONFIG, NOT_PLANNABLE, FamilyError, detect_family, family_of_config)
from tiny_pack.models import _UNET_COMMON, CHROMA_RADIANCE_CONFIG, build_conditioning, build_model

HOST_CONFIGS = comfy.supported_models.models
# the SD x4 upscaler's VAE: three levels, so 4 px per latent cell (the host tells it from the state dict)
X4_UPSCALER_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                   "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


class UnlistedUNetConfig(comfy.supported_models_base.BASE):
    """A model config the family table has never heard of (as a custom node pack might add)."""

    unet_config = {"context_dim": 32}
    unet_extra_config = {"num_heads": -1, "num_head_channels": 16}


def x4_upscaler_vae() -> comfy.sd.VAE:
    """A real ``comfy.sd.VAE`` the host builds from a state dict in the x4 upscaler's layout (seeded weights)."""
    generator = torch.Generator().manual_seed(0)
    shapes = AutoencoderKL(ddconfig=X4_UPSCALER_VAE, embed_dim=4).state_dict()
    return comfy.sd.VAE(sd={name: torch.randn(value.shape, generator=generator) * 0.02 for name, value in shapes.items()})


def patcher(model: comfy.model_base.BaseModel) -> comfy.model_patcher.ModelPatcher:
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def cascade_report(model, latent: dict, **inputs) -> tuple[torch.Tensor, list[str]]:
    output = SelfCascadeKSampler.execute(model, 1, 2, 3.0, "euler", "normal", build_conditioning("sd15"),
                                         build_conditioning("sd15", seed=1), latent, 2.0, 0, 0, 0.7, 0.0, "bilinear",
                                         0, 1.0, **inputs)
    return output.result[0]["samples"], output.ui.as_dict()["text"][0].splitlines()


@pytest.mark.parametrize("config", HOST_CONFIGS, ids=lambda config: config.__name__)
def test_every_host_model_config_has_a_family_or_a_stated_refusal(config):
    name = config.__name__
    assert (name in BY_CONFIG) != (name in NOT_PLANNABLE), (
        f"the host ships {name}, which sampling/families.py neither lists nor refuses: add its facts to BY_CONFIG "
        "(native size, latent factor, size multiple) or its reason to NOT_PLANNABLE")
    if name in NOT_PLANNABLE:
        with pytest.raises(FamilyError, match=f"{name} is .*: Self-Cascade plans image and video models"):
            family_of_config(config)
        return
    family = family_of_config(config)
    assert family.known and config.latent_format.latent_dimensions in (2, 3)  # images, or videos with frames
    assert family.size_multiple % family.latent_factor == 0 and family.native_area > 0


def test_sd2_v_prediction_models_are_768_px():
    assert (detect_family(build_model("sd20v")).name, detect_family(build_model("sd20v")).native_width) == ("sd2-768", 768)
    assert family_of_config(comfy.supported_models.SD20).native_width == 512


def test_a_pixel_space_model_is_planned_in_pixels():
    model = patcher(comfy.supported_models.ChromaRadiance(CHROMA_RADIANCE_CONFIG).get_model({}, device="meta"))
    family = detect_family(model)
    assert (family.name, family.latent_factor, family.size_multiple) == ("chroma-radiance", 1, 16)
    latent, _, _ = SelfCascadeBaseLatent.execute(model, 2048, 1024, 1, 1).result
    assert latent["samples"].shape == (1, 3, 704, 1472)  # 1024x1024's area at 2:1 (sides near 64s), in pixels


def test_an_unlisted_model_gets_the_stated_fallback_and_the_report_says_so():
    config = UnlistedUNetConfig({**_UNET_COMMON, "use_linear_in_transformer": False})
    model = patcher(comfy.model_base.BaseModel(config))
    with torch.no_grad():
        for parameter in model.model.parameters():
            parameter.normal_(0.0, 0.02)  # comfy.ops layers leave their memory uninitialised
    family = detect_family(model)
    assert not family.known and family.unet and (family.latent_factor, family.native_width) == (8, 512)
    samples, report = cascade_report(model, {"samples": torch.zeros((1, 4, 4, 4))})
    assert samples.shape == (1, 4, 8, 8)
    assert report[-1] == ("unknown family: assumed 8 px per latent cell, sizes in multiples of 8 and a native size of "
                          "512x512 (model config UnlistedUNetConfig is not in Self-Cascade's family table)")
    _, listed = cascade_report(build_model("sd15"), {"samples": torch.zeros((1, 4, 4, 4))})
    assert not any("unknown family" in line for line in listed)


def test_a_connected_vae_decides_the_latent_factor():
    model, vae = build_model("sd15"), x4_upscaler_vae()
    assert vae.spacial_compression_encode() == 4 and detect_family(model, vae).latent_factor == 4
    samples, report = cascade_report(model, {"samples": torch.zeros((1, 4, 8, 8))}, vae=vae)
    assert report[0].startswith("base: 32x32") and report[1].startswith("stage 1: 64x64")
    assert samples.shape == (1, 4, 16, 16)  # 64 px at 4 px per cell


@pytest.mark.parametrize("config, host_empty_latent", [
    ("WAN21_T2V", EmptyHunyuanLatentVideo), ("HunyuanVideo", EmptyHunyuanLatentVideo), ("GenmoMochi", EmptyMochiLatentVideo),
    ("LTXV", EmptyLTXVLatentVideo), ("CosmosT2V", EmptyCosmosLatentVideo)])
def test_video_families_count_latent_frames_as_the_hosts_empty_latents(config, host_empty_latent):
    family = BY_CONFIG[config]
    for length in (1, 7, 17, 25, 49, 97, 121):
        host = host_empty_latent.execute(width=256, height=256, length=length, batch_size=1).result[0]["samples"]
        assert family.latent_frames(length) == host.shape[2], (config, length)
