"""DiT upsampler adapters (dit-lite) through the real server: the tiny Flux and the flow demo model take them in the
Self-Cascade KSampler and Self-Cascade Upscale unchanged, an untrained one leaves the output bit-identical, and an
adapter for the other kind of model is refused naming both families while the server keeps serving.

Adapter files are made here with the pack's own ``new_adapter`` for models of the same architecture as those the
server loads (the tiny pack's Flux, SD1.5 and Wan; the flow demo model) and dropped into the session server's
adapter folder; the prompts load them with Load Upsampler Adapter, as a user would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import comfy.model_management
import comfy.model_patcher
from cascade_graphs import cascade_node, tiny_inputs
from harness import Graph, Node
from test_robustness_adapters import trained_like
from test_upscale_server import pixels, saved, upscale_node

from selfcascade.adapters.fileformat import save_adapter
from selfcascade.adapters.modules import DIT_LITE, new_adapter
from selfcascade.models.demo import flow_demo_model
from tiny_pack.models import build_model

FLOW_DEMO = "flow-demo"


def flow_demo() -> comfy.model_patcher.ModelPatcher:
    """The flow demo model's architecture (weights as built: an adapter's shape depends on the config only)."""
    return comfy.model_patcher.ModelPatcher(flow_demo_model.build_flow_model(), load_device=torch.device("cpu"),
                                            offload_device=comfy.model_management.unet_offload_device())


@pytest.fixture(scope="module")
def adapters(adapter_folder: Path) -> dict[str, str]:
    """Adapter files in the server's folder by role: untrained dit-lite for the tiny Flux and the flow demo model,
    a trained-like dit-lite for the tiny Flux, and an untrained lite adapter for the tiny SD1.5."""
    flux = build_model("flux")
    made = {"dit_flux": new_adapter(flux, DIT_LITE), "dit_flow_demo": new_adapter(flow_demo(), DIT_LITE),
            "dit_flux_trained": trained_like(new_adapter(flux, DIT_LITE), seed=3),
            "lite_sd15": new_adapter(build_model("sd15"))}
    files = {}
    for role, adapter in made.items():
        files[role] = f"dit_server_{role}.safetensors"
        save_adapter(adapter_folder / files[role], adapter, overwrite=True)
    return files


def model_inputs(g: Graph, model: str) -> tuple[tuple[Node, Node, Node, Node], dict]:
    """Model, positive, negative and a base latent for ``model``, and the sampler settings it needs."""
    if model == FLOW_DEMO:
        demo = g.node("SelfCascadeDemoModel", count=2, architecture="flow")
        base = g.node("SelfCascadeBaseLatent", model=demo, target_width=64, target_height=64, batch_size=1, length=1)
        return (demo, demo.out(1), demo.out(2), base), {"target_width": 64, "target_height": 64}
    if model == "wan":
        inputs = tiny_inputs(g, "wan")
        video = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=9, batch_size=1)
        return (*inputs[:3], video), {}
    return tiny_inputs(g, model), {}


def ksampler_prompt(model: str, prefix: str, adapter: str | None = None) -> tuple[Graph, Node, Node | None]:
    """A Self-Cascade KSampler prompt (2x per side) on ``model``, with ``adapter`` loaded when given;
    returns the graph, its SaveLatent and its Load Upsampler Adapter."""
    g = Graph()
    inputs, settings = model_inputs(g, model)
    loader = g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=adapter) if adapter else None
    if loader is not None:
        settings.update(upsampler_adapter=loader, adapter_strength=1.0)
    sampler = cascade_node(g, *inputs, **settings)
    return g, g.node("SaveLatent", samples=sampler, filename_prefix=prefix), loader


@pytest.mark.parametrize("model, role, family", [("flux", "dit_flux", "flux"),
                                                  (FLOW_DEMO, "dit_flow_demo", "selfcascade-demo-flow")])
def test_an_untrained_dit_adapter_leaves_the_ksampler_bit_identical(comfy, adapters, model, role, family):
    plain_graph, plain_save, _ = ksampler_prompt(model, f"dit_plain_{model}")
    plain = comfy.run(plain_graph).latent(plain_save.id)
    graph, save, loader = ksampler_prompt(model, f"dit_untrained_{model}", adapters[role])
    result = comfy.run(graph)
    assert result.text(loader.id).startswith(f"dit-lite upsampler adapter for {family}")
    assert torch.equal(result.latent(save.id), plain)


def test_a_trained_dit_adapter_changes_the_ksampler_s_output(comfy, adapters):
    """The adapter really acts through the server, so the bit-identical result above is not a skipped adapter."""
    plain_graph, plain_save, _ = ksampler_prompt("flux", "dit_plain_flux_again")
    graph, save, _ = ksampler_prompt("flux", "dit_trained_flux", adapters["dit_flux_trained"])
    tuned = comfy.run(graph).latent(save.id)
    assert torch.isfinite(tuned).all() and not torch.equal(tuned, comfy.run(plain_graph).latent(plain_save.id))


def dit_upscale(model: str, prefix: str, adapter: str | None = None) -> tuple[Graph, str, str]:
    """Self-Cascade Upscale (2x per side) of a 64x64 image on the tiny Flux, or a 32x32 one on the flow demo model."""
    g = Graph()
    if model == FLOW_DEMO:
        demo = g.node("SelfCascadeDemoModel", count=2, architecture="flow")
        inputs = dict(model=demo, positive=demo.out(1), negative=demo.out(2), vae=demo.out(3),
                      image=g.node("TinyImage", width=32, height=32, frames=1, channels=3, seed=3))
    else:
        inputs = dict(model=g.node("TinyModelLoader", family="flux", seed=0),
                      positive=g.node("TinyConditioning", family="flux", seed=0),
                      negative=g.node("TinyConditioning", family="flux", seed=1), vae=g.node("TinyFluxVAE", seed=0),
                      image=g.node("TinyImage", width=64, height=64, frames=1, channels=3, seed=3))
    extra = {}
    if adapter:
        extra = dict(upsampler_adapter=g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=adapter),
                     adapter_strength=1.0)
    return (g, *saved(g, upscale_node(g, inputs, scale_by=2.0, **extra), prefix))


@pytest.mark.parametrize("model, role, shape", [("flux", "dit_flux", (1, 16, 16, 16)),
                                                 (FLOW_DEMO, "dit_flow_demo", (1, 3, 64, 64))])
def test_an_untrained_dit_adapter_leaves_the_upscale_bit_identical(comfy, adapters, model, role, shape):
    plain_graph, plain_latent, plain_images = dit_upscale(model, f"dit_upscale_plain_{model}")
    plain = comfy.run(plain_graph)
    graph, latent, images = dit_upscale(model, f"dit_upscale_untrained_{model}", adapters[role])
    result = comfy.run(graph)
    assert result.latent(latent).shape == shape
    assert torch.equal(result.latent(latent), plain.latent(plain_latent))
    assert np.array_equal(pixels(result, images), pixels(plain, plain_images))


def test_a_trained_dit_adapter_changes_the_upscale(comfy, adapters):
    plain_graph, plain_latent, _ = dit_upscale("flux", "dit_upscale_plain_again")
    tuned_graph, tuned_latent, _ = dit_upscale("flux", "dit_upscale_trained", adapters["dit_flux_trained"])
    assert not torch.equal(comfy.run(tuned_graph).latent(tuned_latent), comfy.run(plain_graph).latent(plain_latent))


@pytest.mark.parametrize("model, role, fragments", [
    ("flux", "lite_sd15", ["the lite upsampler adapter for sd15 needs a UNet model (SD1.x, SD2.x, SDXL)",
                           "this is a flux model (a Flux-style transformer)", "load a dit-lite adapter made for flux"]),
    ("sd15", "dit_flux", ["the dit-lite upsampler adapter for flux needs a Flux-style transformer",
                          "this is a sd15 model (a UNet)", "load a lite adapter made for sd15"]),
    ("wan", "dit_flux", ["the dit-lite upsampler adapter for flux needs a Flux-style transformer",
                         "this is a wan model (WanModel)", "no DiT adapter fits it yet"]),
    (FLOW_DEMO, "dit_flux", ["the dit-lite upsampler adapter for flux does not fit this selfcascade-demo-flow model",
                             "load an adapter made for selfcascade-demo-flow"]),
], ids=["unet-adapter-on-flux", "dit-adapter-on-sd15", "dit-adapter-on-wan", "flux-adapter-on-flow-demo"])
def test_an_adapter_for_another_family_is_refused_naming_both_and_the_server_keeps_serving(comfy, adapters, model,
                                                                                           role, fragments):
    graph, _, _ = ksampler_prompt(model, f"dit_refused_{model}", adapters[role])
    error = comfy.expect_execution_error(graph)
    assert error.node_type == "SelfCascadeKSampler"
    assert all(fragment in error.message for fragment in fragments), error.message
    after_graph, after_save, _ = ksampler_prompt("flux", "dit_after_refusal", adapters["dit_flux"])
    assert comfy.run(after_graph).latent(after_save.id).shape == (1, 16, 16, 16)
