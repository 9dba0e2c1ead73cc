"""Newer latents and hosts on the test host: the base latent prepared as the host's own KSampler prepares
it (with the keys and signatures newer hosts have), and family facts the host's latent format states."""
from __future__ import annotations

import pytest
import torch

import comfy.latent_formats
import comfy.model_management
import comfy.sample
import comfy.supported_models
import comfyui_version
import nodes as core
from selfcascade.nodes.cascade_nodes import SelfCascadeKSampler
from selfcascade.sampling import latents
from selfcascade.sampling.families import BY_CONFIG, FLUX, SD_X4_UPSCALER, detect_family, stated_ratios
from selfcascade.sampling.latents import RATIO_KEYS, host_ratio_keys, prepare_base_latent
from selfcascade.sampling.upscale import free_memory, tiling
from tiny_pack.models import build_conditioning, build_model, build_vae

GB = 1024**3
HOST = f"ComfyUI {comfyui_version.__version__}"
# what a newer host's EmptyLatentImage gives: an 8 px-per-cell empty latent that says so
KEYED = {"samples": torch.zeros((1, 4, 8, 12)), "downscale_ratio_spacial": 8, "downscale_ratio_temporal": 1,
         "batch_index": [0]}


def core_ksampler_input(monkeypatch, model, latent: dict) -> tuple[torch.Tensor, dict]:
    """The latent core's KSampler hands its sampler (recorded on the way through), and its output latent."""
    seen = {}
    real = comfy.sample.sample

    def sample(*args, **kwargs):
        seen["latent_image"] = args[8]
        return real(*args, **kwargs)
    monkeypatch.setattr(comfy.sample, "sample", sample)
    (out,) = core.KSampler().sample(model, 0, 1, 1.0, "euler", "normal", build_conditioning("flux"),
                                    build_conditioning("flux", seed=1), latent)
    return seen["latent_image"], out


def test_the_base_latent_is_what_the_hosts_ksampler_samples_and_keeps_the_keys_it_keeps(monkeypatch):
    model = build_model("flux")
    sampled, out = core_ksampler_input(monkeypatch, model, KEYED)
    prepared = prepare_base_latent(model, KEYED)
    assert prepared["samples"].shape == sampled.shape == (1, 16, 8, 12)
    assert torch.equal(prepared["samples"], sampled)
    assert set(prepared) == set(out)  # keys the host does not take stay, as core's output keeps them
    assert KEYED["samples"].shape == (1, 4, 8, 12) and "downscale_ratio_spacial" in KEYED  # input untouched


def newer_host_function(taken: tuple[str, ...], calls: list):
    """The test host's own function behind a newer host's signature, recording what it is handed."""
    real = comfy.sample.fix_empty_latent_channels

    def spatial_only(model, latent_image, downscale_ratio_spacial=None):
        calls.append({"downscale_ratio_spacial": downscale_ratio_spacial})
        return real(model, latent_image)

    def both(model, latent_image, downscale_ratio_spacial=None, downscale_ratio_temporal=None):
        calls.append({"downscale_ratio_spacial": downscale_ratio_spacial,
                      "downscale_ratio_temporal": downscale_ratio_temporal})
        return real(model, latent_image)
    return both if len(taken) == 2 else spatial_only


@pytest.mark.parametrize("taken", [RATIO_KEYS, RATIO_KEYS[:1]], ids=["0.21-and-later", "0.10"])
def test_a_newer_host_is_handed_the_keys_its_signature_takes_and_they_are_popped(monkeypatch, taken):
    calls = []
    monkeypatch.setattr(comfy.sample, "fix_empty_latent_channels", newer_host_function(taken, calls))
    assert host_ratio_keys() == taken  # inspected per host function, not once for all time
    prepared = prepare_base_latent(build_model("flux"), KEYED)
    assert calls == [{key: KEYED[key] for key in taken}]
    assert set(prepared) == {"samples", "batch_index", *(set(RATIO_KEYS) - set(taken))}
    assert prepare_base_latent(build_model("flux"), prepared)["samples"].shape == prepared["samples"].shape


def test_the_test_host_takes_no_keys_and_the_signature_is_read_once():
    assert host_ratio_keys() == tuple(key for key in RATIO_KEYS if key in comfy.sample.fix_empty_latent_channels
                                      .__code__.co_varnames)
    before = latents._ratio_keys_taken.cache_info().hits
    host_ratio_keys()
    assert latents._ratio_keys_taken.cache_info().hits == before + 1


# --- family facts the host's latent format states


class Flux2LikeFormat(comfy.latent_formats.Flux):
    """Flux's latent format as a newer host states a 16 px one (0.10 on: ``spacial_downscale_ratio``)."""

    spacial_downscale_ratio = 16


class SlowerWanFormat(comfy.latent_formats.Wan21):
    temporal_downscale_ratio = 8


def with_latent_format(model, latent_format):
    patched = model.clone()
    patched.add_object_patch("latent_format", latent_format)
    return patched


def test_a_stated_spatial_ratio_wins_over_the_table():
    model = with_latent_format(build_model("flux"), Flux2LikeFormat())
    family = detect_family(model)
    assert (family.name, family.latent_factor, family.size_multiple) == ("flux", 16, 32)  # 2 cells, as Flux's 16 px
    assert detect_family(build_model("flux")) == FLUX


def test_a_stated_temporal_ratio_wins_for_video_latents_only():
    assert detect_family(with_latent_format(build_model("wan"), SlowerWanFormat())).frames_per_latent == 8
    assert stated_ratios(type("ImageFormat", (comfy.latent_formats.SD15,), {"temporal_downscale_ratio": 4})()) == \
        (None, None)


def test_the_base_classes_default_is_not_a_statement(monkeypatch):
    """Newer hosts put 8 px on ``LatentFormat`` itself; the x4 upscaler's format inherits it and is 4 px."""
    monkeypatch.setattr(comfy.latent_formats.LatentFormat, "spacial_downscale_ratio", 8, raising=False)
    monkeypatch.setattr(comfy.latent_formats.LatentFormat, "temporal_downscale_ratio", 1, raising=False)
    assert stated_ratios(comfy.latent_formats.SD_X4()) == (None, None)
    from selfcascade.sampling.families import family_of_config
    assert family_of_config(comfy.supported_models.SD_X4Upscaler) == SD_X4_UPSCALER


def test_the_table_agrees_with_what_the_host_states():
    """On hosts that state ratios (0.10 on) the table must not need the override: a disagreement is a
    table entry to fix. The test host (0.3.75) states none, so this checks a newer host's run."""
    stated = {config.__name__: stated_ratios(config.latent_format) for config in comfy.supported_models.models
              if config.__name__ in BY_CONFIG}
    stated = {name: ratios for name, ratios in stated.items() if ratios != (None, None)}
    if not stated:
        pytest.skip("this host's latent formats state no ratios (ComfyUI before 0.10)")
    wrong = {name: (ratios, BY_CONFIG[name].latent_factor, BY_CONFIG[name].frames_per_latent)
             for name, (spatial, temporal) in stated.items() for ratios in [(spatial, temporal)]
             if spatial not in (None, BY_CONFIG[name].latent_factor)
             or temporal not in (None, BY_CONFIG[name].frames_per_latent)}
    assert not wrong, f"the host states other ratios than the family table: {wrong}"


# --- the VAE's patcher's free memory (0.33: what dynamic VRAM can give back, on top of the device's)


def test_auto_tiling_asks_the_vae_patcher_for_free_memory_where_the_host_has_it(monkeypatch):
    vae = build_vae()
    extra = 10**6 * GB  # more than any machine has: the verdict can only come from the patcher's figure
    assert tiling(vae, "auto", 64 * 64, estimate=extra / 2)[0] is True  # the device's own free memory
    monkeypatch.setattr(vae.patcher, "get_free_memory",
                        lambda device: comfy.model_management.get_free_memory(device) + extra, raising=False)
    assert free_memory(vae) >= extra
    tiled, why = tiling(vae, "auto", 64 * 64, estimate=extra / 2)
    assert not tiled and why.startswith("auto: ComfyUI estimates 500000.00 GB, ")


# --- Flux.2 (128 channels at 16 px per cell) from the host's plain Empty Latent Image


def flux2_runs(scale_by: float) -> tuple[dict, dict, list[str]]:
    """Core's KSampler and the Self-Cascade KSampler on a 256x256 Empty Latent Image with a tiny Flux.2."""
    model, positive, negative = build_model("flux2"), build_conditioning("flux2"), build_conditioning("flux2", seed=1)
    (latent,) = core.EmptyLatentImage().generate(256, 256, 1)
    (expected,) = core.KSampler().sample(model, 3, 1, 1.0, "euler", "simple", positive, negative, latent)
    output = SelfCascadeKSampler.execute(
        model=model, seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple", positive=positive,
        negative=negative, latent_image=latent, scale_by=scale_by, target_width=0, target_height=0, k=0.7,
        later_k=0.0, upscale_method="bilinear", stage_steps=1, denoise=1.0)
    return expected, output.result[0], output.ui.as_dict()["text"][0].splitlines()


def test_flux2_base_stage_equals_the_hosts_ksampler():
    expected, ours, _ = flux2_runs(scale_by=1.0)
    assert torch.equal(ours["samples"], expected["samples"]) and set(ours) == set(expected)


@pytest.mark.skipif("downscale_ratio_spacial" not in host_ratio_keys(),
                    reason=f"{HOST}'s KSampler samples an empty latent at the size it was made (no "
                           "downscale_ratio_spacial; ComfyUI 0.10 on resize it to the model's 16 px): run on a newer "
                           "host (scripts/provision_newer_host.py)")
def test_flux2_samples_a_256_px_empty_latent_image_at_256_px_and_cascades_from_there():
    expected, _, report = flux2_runs(scale_by=1.0)
    assert expected["samples"].shape == (1, 128, 16, 16) and report[0].startswith("base: 256x256")
    _, ours, report = flux2_runs(scale_by=2.0)
    assert ours["samples"].shape == (1, 128, 32, 32)
    assert report[0].startswith("base: 256x256") and report[1].startswith("stage 1: 512x512")
