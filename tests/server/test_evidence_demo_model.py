"""The shipped demo models through the real server: the main job's graph, count prompt to a saved image."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from harness import ComfyClient, Graph


def demo_cascade_graph(count: int, size: int, steps: int, seed: int,
                       architecture: str = "unet") -> tuple[Graph, object, object]:
    """Demo Model -> Base Latent (32x32) -> Self-Cascade KSampler to ``size`` -> VAE Decode -> Save Image."""
    graph = Graph()
    demo = graph.node("SelfCascadeDemoModel", count=count, architecture=architecture)
    base = graph.node("SelfCascadeBaseLatent", model=demo, target_width=size, target_height=size, batch_size=1, length=1)
    sampler = graph.node(
        "SelfCascadeKSampler", model=demo, seed=seed, steps=steps, cfg=4.0, sampler_name="euler", scheduler="normal",
        positive=demo.out(1), negative=demo.out(2), latent_image=base.out(0), scale_by=2.0,
        target_width=base.out(1), target_height=base.out(2), k=0.7, later_k=0.0, upscale_method="bilinear",
        stage_steps=0, denoise=1.0)
    image = graph.node("VAEDecode", samples=sampler, vae=demo.out(3))
    save = graph.node("SaveImage", images=image, filename_prefix="self-cascade/demo")
    return graph, sampler, save


@pytest.mark.parametrize("architecture", ["unet", "flow"])
def test_demo_model_cascades_from_its_native_32px_to_128px(comfy: ComfyClient, architecture: str):
    graph, sampler, save = demo_cascade_graph(count=2, size=128, steps=4, seed=0, architecture=architecture)

    result = comfy.run(graph)

    assert [image.size for image in result.images(save.id)] == [(128, 128)]
    report = [line.split(",")[0] for line in result.text(sampler.id).splitlines()]
    assert report[:3] == ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]


def test_flow_demo_model_draws_discs_through_the_server(comfy: ComfyClient):
    """The flow model's output is a picture of the family, not noise: saturated discs on a grey background."""
    graph, _, save = demo_cascade_graph(count=2, size=64, steps=12, seed=0, architecture="flow")
    (image,) = comfy.run(graph).images(save.id)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert 1 <= ndimage.label(saturated)[1] and saturated.mean() < 0.5, "the flow demo model drew no disc"
