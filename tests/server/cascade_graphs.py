"""Prompt-building helpers shared by the server tests: tiny inputs and a Self-Cascade KSampler node."""
from harness import Graph, Node

SEED, STEPS, CFG, K = 11, 5, 4.0, 0.7


def tiny_inputs(g: Graph, family: str, size: int = 64) -> tuple[Node, Node, Node, Node]:
    """Model, positive, negative and an empty latent of ``size`` px for a tiny ``family`` model."""
    model = g.node("TinyModelLoader", family=family, seed=0)
    positive = g.node("TinyConditioning", family=family, seed=0)
    negative = g.node("TinyConditioning", family=family, seed=1)
    latent = g.node("EmptyLatentImage", width=size, height=size, batch_size=1)
    return model, positive, negative, latent


def cascade_node(g: Graph, model: Node, positive: Node, negative: Node, latent: Node, **overrides) -> Node:
    """A Self-Cascade KSampler with the suite's defaults (2x per side, K = 0.7), any input overridable."""
    settings = dict(model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal",
                    positive=positive, negative=negative, latent_image=latent, scale_by=2.0, target_width=0,
                    target_height=0, k=K, later_k=0.0, upscale_method="bilinear", stage_steps=0, denoise=1.0)
    settings.update(overrides)
    return g.node("SelfCascadeKSampler", **settings)


def saved_cascade(family: str, prefix: str = "cascade", **overrides) -> tuple[Graph, Node]:
    """A prompt that runs the cascade on tiny ``family`` inputs and saves the latent; returns (graph, save node)."""
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, family), **overrides)
    return g, g.node("SaveLatent", samples=sampler, filename_prefix=prefix)
