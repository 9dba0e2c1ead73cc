"""Each tiny family samples through the host's own KSampler: the test models are real models to ComfyUI."""
from __future__ import annotations

import pytest

from harness import ComfyClient, Graph

SIZE = 64  # pixels; 8 latent cells per side

EMPTY_LATENT = {  # the core node a user would pick for the family, and the latent it should come back as
    "sd15": (("EmptyLatentImage", {}), (1, 4, 8, 8)),
    "sd20v": (("EmptyLatentImage", {}), (1, 4, 8, 8)),
    "sdxl": (("EmptyLatentImage", {}), (1, 4, 8, 8)),
    "flux": (("EmptySD3LatentImage", {}), (1, 16, 8, 8)),
    "wan": (("EmptyHunyuanLatentVideo", {"length": 5}), (1, 16, 2, 8, 8)),  # 5 frames -> 2 latent frames
}


@pytest.mark.parametrize("family", sorted(EMPTY_LATENT))
def test_core_ksampler_samples_tiny_family(comfy: ComfyClient, family: str):
    (empty_node, extra), expected_shape = EMPTY_LATENT[family]
    graph = Graph()
    sampled = graph.node(
        "KSampler", model=graph.node("TinyModelLoader", family=family, seed=0), seed=0, steps=2,
        cfg=1.0 if family == "flux" else 5.0, sampler_name="euler", scheduler="normal",
        positive=graph.node("TinyConditioning", family=family, seed=0),
        negative=graph.node("TinyConditioning", family=family, seed=1),
        latent_image=graph.node(empty_node, width=SIZE, height=SIZE, batch_size=1, **extra), denoise=1.0)
    save = graph.node("SaveLatent", samples=sampled, filename_prefix=f"families/{family}")

    latent = comfy.run(graph).latent(save.id)

    assert tuple(latent.shape) == expected_shape
    assert latent.isfinite().all() and latent.std() > 0  # sampled, not the empty latent passed through
