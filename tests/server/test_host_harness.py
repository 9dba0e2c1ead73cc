"""The harness reports what the host reports: validation errors, run-time errors, saved outputs."""
from __future__ import annotations

import pytest

from harness import ComfyClient, ExecutionFailed, Graph, PromptRejected


def tiny_sampler_graph(steps: int = 1) -> tuple[Graph, object]:
    graph = Graph()
    model = graph.node("TinyModelLoader", family="sd15", seed=0)
    sampled = graph.node("KSampler", model=model, seed=0, steps=steps, cfg=5.0, sampler_name="euler",
                         scheduler="normal", positive=graph.node("TinyConditioning", family="sd15", seed=0),
                         negative=graph.node("TinyConditioning", family="sd15", seed=1),
                         latent_image=graph.node("EmptyLatentImage", width=64, height=64, batch_size=1), denoise=1.0)
    return graph, sampled


def test_validation_error_names_node_and_input(comfy: ComfyClient):
    graph, sampled = tiny_sampler_graph(steps=0)
    graph.node("SaveLatent", samples=sampled, filename_prefix="harness/invalid")

    rejected = comfy.expect_validation_error(graph)

    errors = rejected.node_errors[sampled.id]["errors"]
    assert [(e["type"], e["extra_info"]["input_name"]) for e in errors] == [("value_smaller_than_min", "steps")]
    with pytest.raises(PromptRejected, match=f"node {sampled.id} \\(KSampler\\): value_smaller_than_min"):
        comfy.run(graph)


def test_execution_error_names_node_message_and_traceback(comfy: ComfyClient):
    graph = Graph()
    failing = graph.node("TinyRaise", samples=graph.node("EmptyLatentImage", width=64, height=64, batch_size=1),
                         message="boom from the tiny pack")
    graph.node("SaveLatent", samples=failing, filename_prefix="harness/failing")

    error = comfy.expect_execution_error(graph)

    assert (error.node_id, error.node_type, error.exception_type) == (failing.id, "TinyRaise", "RuntimeError")
    assert error.message == "boom from the tiny pack"
    assert "raise RuntimeError(message)" in error.traceback
    with pytest.raises(ExecutionFailed, match=f"node {failing.id} \\(TinyRaise\\): RuntimeError: boom"):
        comfy.run(graph)


def test_saved_latent_and_decoded_image_come_back(comfy: ComfyClient):
    graph, sampled = tiny_sampler_graph()
    save_latent = graph.node("SaveLatent", samples=sampled, filename_prefix="harness/latent")
    decoded = graph.node("VAEDecode", samples=sampled, vae=graph.node("TinyVAE", seed=0))
    save_image = graph.node("SaveImage", images=decoded, filename_prefix="harness/image")

    result = comfy.run(graph)

    latent = result.latent(save_latent.id)
    assert latent.shape == (1, 4, 8, 8) and latent.isfinite().all() and latent.abs().sum() > 0
    assert [image.size for image in result.images(save_image.id)] == [(64, 64)]
