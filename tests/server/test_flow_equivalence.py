"""Flow models through the real server: the KSampler and the Upscale node equal the core-node cascade.

Issue 19's guarantee on shifted flow-matching models (tiny Flux behind ModelSamplingFlux, tiny Wan
behind ModelSamplingSD3 at shift 8, as the shipped Wan workflows set it), on both K axes. The core
graph uses only host nodes: KSampler (or VAE Encode) -> per stage LatentUpscale + SamplerCustom
with BasicScheduler + SplitSigmas at the index where the K's cut lands (the host's own schedule of
the shifted model, cut by the pack's ``cut_sigma`` on that axis) and noise seed ``seed + stage``.
"""
from __future__ import annotations

import functools

import pytest
import torch

import comfy.samplers
from comfy_extras.nodes_model_advanced import ModelSamplingFlux, ModelSamplingSD3

from cascade_graphs import CFG, SEED, cascade_node
from harness import Graph, Node

from selfcascade.sampling.schedule import cut_schedule, cut_sigma
from tiny_pack.models import build_model

STEPS = 10
FLUX_SHIFT = dict(max_shift=1.15, base_shift=0.5, width=1024, height=1024)  # the host's defaults: shift 1.15
WAN_SHIFT = 8.0
# family -> (its pixel side at the base, latent maker)
CASES = {"flux": 64, "wan": 32}


def shifted(g: Graph, family: str) -> tuple[Node, Node, Node]:
    """The tiny model behind its family's sampling shift node, and its prompts."""
    model = g.node("TinyModelLoader", family=family, seed=0)
    if family == "flux":
        model = g.node("ModelSamplingFlux", model=model, **FLUX_SHIFT)
    else:
        model = g.node("ModelSamplingSD3", model=model, shift=WAN_SHIFT)
    return (model, g.node("TinyConditioning", family=family, seed=0), g.node("TinyConditioning", family=family, seed=1))


@functools.lru_cache(maxsize=None)
def split_index(family: str, k: float, axis: str) -> int:
    """Where BasicScheduler's sigmas of the shifted model are split for a stage at ``k`` on ``axis``."""
    model = build_model(family)
    if family == "flux":
        (model,) = ModelSamplingFlux().patch(model, **FLUX_SHIFT)
    else:
        (model,) = ModelSamplingSD3().patch(model, WAN_SHIFT)
    model_sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, "normal", STEPS).cpu()
    return len(sigmas) - len(cut_schedule(sigmas, cut_sigma(model_sampling, k, axis)))


def core_stage(g: Graph, model: Node, positive: Node, negative: Node, latent: Node, side: int, index: int,
               split: int) -> Node:
    upscaled = g.node("LatentUpscale", samples=latent, upscale_method="bilinear", width=side, height=side,
                      crop="disabled")
    sigmas = g.node("SplitSigmas", sigmas=g.node("BasicScheduler", model=model, scheduler="normal", steps=STEPS,
                                                 denoise=1.0), step=split).out(1)
    return g.node("SamplerCustom", model=model, add_noise=True, noise_seed=SEED + index, cfg=CFG, positive=positive,
                  negative=negative, sampler=g.node("KSamplerSelect", sampler_name="euler"), sigmas=sigmas,
                  latent_image=upscaled)


def empty_latent(g: Graph, family: str) -> Node:
    side = CASES[family]
    if family == "wan":
        return g.node("EmptyHunyuanLatentVideo", width=side, height=side, length=5, batch_size=1)
    return g.node("EmptyLatentImage", width=side, height=side, batch_size=1)


def test_the_snr_axis_cuts_shifted_models_elsewhere_than_the_percent_axis():
    # otherwise the tests below would not tell the axes apart
    assert split_index("wan", 0.7, "snr") > split_index("wan", 0.7, "percent")
    assert split_index("flux", 0.7, "snr") != split_index("flux", 0.7, "percent")


@pytest.mark.parametrize("axis", ["percent", "snr"])
@pytest.mark.parametrize("family", ["flux", "wan"])
def test_ksampler_on_a_shifted_flow_model_equals_the_core_node_cascade(comfy, family, axis):
    ours = Graph()
    model, positive, negative = shifted(ours, family)
    sampler = cascade_node(ours, model, positive, negative, empty_latent(ours, family), steps=STEPS, scale_by=4.0,
                           k=0.7, later_k=0.5, k_axis=axis)
    ours_save = ours.node("SaveLatent", samples=sampler, filename_prefix=f"flow_{family}_{axis}")
    result = comfy.run(ours)

    core = Graph()
    model, positive, negative = shifted(core, family)
    stage = core.node("KSampler", model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler",
                      scheduler="normal", positive=positive, negative=negative, latent_image=empty_latent(core, family),
                      denoise=1.0)
    for index, k in ((1, 0.7), (2, 0.5)):
        stage = core_stage(core, model, positive, negative, stage, CASES[family] * 2**index, index,
                           split_index(family, k, axis))
    core_save = core.node("SaveLatent", samples=stage, filename_prefix=f"flow_core_{family}_{axis}")

    latent = result.latent(ours_save.id)
    assert latent.shape[-2:] == (CASES[family] // 2, CASES[family] // 2)  # 8 px per latent cell, 4x per side
    assert torch.equal(latent, comfy.run(core).latent(core_save.id))
    report = result.text(sampler.id).splitlines()
    assert f"{STEPS - split_index(family, 0.7, axis)} steps" in report[1] and "re-noised to sigma" in report[1]


@pytest.mark.parametrize("axis", ["percent", "snr"])
@pytest.mark.parametrize("family", ["flux", "wan"])
def test_upscale_on_a_shifted_flow_model_equals_the_core_node_cascade(comfy, family, axis):
    def inputs(g: Graph) -> dict:
        model, positive, negative = shifted(g, family)
        frames = 5 if family == "wan" else 2
        vae = g.node("TinyVideoVAE", seed=0) if family == "wan" else g.node("TinyFluxVAE", seed=0)
        image = g.node("TinyImage", width=CASES[family], height=CASES[family], frames=frames, channels=3, seed=3)
        return dict(model=model, positive=positive, negative=negative, vae=vae, image=image)

    ours = Graph()
    node = ours.node("SelfCascadeUpscale", seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal",
                     scale_by=4.0, target_width=0, target_height=0, k=0.5, later_k=0.0, upscale_method="bilinear",
                     stage_steps=0, pixel_pivot=False, tile="never", tile_size=512, k_axis=axis, **inputs(ours))
    ours_save = ours.node("SaveLatent", samples=node.out(1), filename_prefix=f"flow_upscale_{family}_{axis}")
    result = comfy.run(ours)

    core = Graph()
    parts = inputs(core)
    stage = core.node("VAEEncode", pixels=parts["image"], vae=parts["vae"])
    for index in (1, 2):
        stage = core_stage(core, parts["model"], parts["positive"], parts["negative"], stage,
                           CASES[family] * 2**index, index, split_index(family, 0.5, axis))
    core_save = core.node("SaveLatent", samples=stage, filename_prefix=f"flow_upscale_core_{family}_{axis}")

    assert torch.equal(result.latent(ours_save.id), comfy.run(core).latent(core_save.id))
    assert "re-noised to sigma" in result.text(node.id)
