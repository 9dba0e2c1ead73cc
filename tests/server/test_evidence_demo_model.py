"""The shipped demo model through the real server: the main job's graph, count prompt to a saved image."""
from __future__ import annotations

from harness import ComfyClient, Graph


def demo_cascade_graph(count: int, size: int, steps: int, seed: int) -> tuple[Graph, object, object]:
    """Demo Model -> Base Latent (32x32) -> Self-Cascade KSampler to ``size`` -> VAE Decode -> Save Image."""
    graph = Graph()
    demo = graph.node("SelfCascadeDemoModel", count=count)
    base = graph.node("SelfCascadeBaseLatent", model=demo, target_width=size, target_height=size, batch_size=1, length=1)
    sampler = graph.node(
        "SelfCascadeKSampler", model=demo, seed=seed, steps=steps, cfg=4.0, sampler_name="euler", scheduler="normal",
        positive=demo.out(1), negative=demo.out(2), latent_image=base.out(0), scale_by=2.0,
        target_width=base.out(1), target_height=base.out(2), k=0.7, later_k=0.0, upscale_method="bilinear",
        stage_steps=0, denoise=1.0)
    image = graph.node("VAEDecode", samples=sampler, vae=demo.out(3))
    save = graph.node("SaveImage", images=image, filename_prefix="self-cascade/demo")
    return graph, sampler, save


def test_demo_model_cascades_from_its_native_32px_to_128px(comfy: ComfyClient):
    graph, sampler, save = demo_cascade_graph(count=2, size=128, steps=4, seed=0)

    result = comfy.run(graph)

    assert [image.size for image in result.images(save.id)] == [(128, 128)]
    report = [line.split(",")[0] for line in result.text(sampler.id).splitlines()]
    assert report[:3] == ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]
