"""Bad inputs, faults, interruption, isolation and determinism of the cascade, through the real server.

Every bad input must fail with a message that names the problem and the fix, and the very next
valid prompt must succeed: one bad prompt never takes the server down or poisons the next one.
"""
import pytest
import requests
import torch

from cascade_graphs import cascade_node, saved_cascade, tiny_inputs
from harness import ComfyClient, ComfyServer, Graph


def forget_cached_outputs(comfy) -> None:
    """Make the next prompt recompute every node: the host resets its output caches on /free."""
    requests.post(f"{comfy.url}/free", json={"unload_models": True, "free_memory": True}, timeout=30).raise_for_status()


@pytest.fixture
def then_valid(comfy):
    """After the test's bad prompt, a valid cascade must still run."""
    yield
    graph, save = saved_cascade("sd15", prefix="after_bad_input")
    assert comfy.run(graph).latent(save.id).shape == (1, 4, 16, 16)


def test_target_at_or_below_base_is_a_single_stage_and_says_so(comfy):
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), target_width=48, target_height=48)
    save = g.node("SaveLatent", samples=sampler, filename_prefix="single")
    result = comfy.run(g)
    assert result.latent(save.id).shape == (1, 4, 8, 8)
    assert "not larger than the base 64x64: single stage, no cascade" in result.text(sampler.id)


def test_odd_target_is_rounded_and_the_report_says_to_what(comfy):
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), target_width=130, target_height=123)
    save = g.node("SaveLatent", samples=sampler, filename_prefix="odd")
    result = comfy.run(g)
    assert result.latent(save.id).shape == (1, 4, 15, 16)
    assert "target 130x123 is not a multiple of 8 px; rounded to 128x120" in result.text(sampler.id)


@pytest.mark.usefixtures("then_valid")
def test_target_above_the_side_limit_is_refused(comfy):
    g = Graph()
    g.node("SaveLatent", samples=cascade_node(g, *tiny_inputs(g, "sd15"), target_width=20000, target_height=512),
           filename_prefix="too_big")
    rejected = comfy.expect_validation_error(g)
    assert "target_width" in str(rejected) and "20000" in str(rejected)
    g2 = Graph()
    big_base = g2.node("EmptyLatentImage", width=4096, height=4096, batch_size=1)
    model, positive, negative, _ = tiny_inputs(g2, "sd15")
    g2.node("SaveLatent", samples=cascade_node(g2, model, positive, negative, big_base, scale_by=8.0),
            filename_prefix="too_big")
    error = comfy.expect_execution_error(g2)
    assert "exceeds the 16384 px side limit; choose a smaller target or scale" in error.message


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("strength", [0.0, 1.5])
def test_pivot_strength_outside_unit_interval_is_refused(comfy, strength):
    graph, _ = saved_cascade("sd15", k=strength)
    rejected = comfy.expect_validation_error(graph)
    assert "k" in str(rejected)


@pytest.mark.usefixtures("then_valid")
def test_stage_steps_zero_derives_them_from_k_and_negative_is_refused(comfy):
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), steps=10, stage_steps=0)
    g.node("SaveLatent", samples=sampler, filename_prefix="auto_steps")
    assert "stage 1: 128x128, K 0.70, 7 steps" in comfy.run(g).text(sampler.id)  # 7 of 10 below K = 0.7
    graph, _ = saved_cascade("sd15", stage_steps=-1)
    assert "stage_steps" in str(comfy.expect_validation_error(graph))


@pytest.mark.usefixtures("then_valid")
def test_latent_of_another_model_is_refused(comfy):
    g = Graph()
    model, positive, negative, _ = tiny_inputs(g, "flux")
    latent = g.node("TinyLatent", channels=4, size=8, fill="noise", seed=0)
    g.node("SaveLatent", samples=cascade_node(g, model, positive, negative, latent), filename_prefix="channels")
    error = comfy.expect_execution_error(g)
    assert "the latent has 4 channels but this model expects 16" in error.message
    assert "encode the image with this model's VAE" in error.message


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("fill", ["nan", "inf"])
def test_nan_or_inf_in_the_input_latent_is_refused(comfy, fill):
    g = Graph()
    model, positive, negative, _ = tiny_inputs(g, "sd15")
    latent = g.node("TinyLatent", channels=4, size=8, fill=fill, seed=0)
    g.node("SaveLatent", samples=cascade_node(g, model, positive, negative, latent), filename_prefix="nan")
    error = comfy.expect_execution_error(g)
    assert "contains NaN or Inf values" in error.message


@pytest.mark.usefixtures("then_valid")
def test_out_of_memory_names_the_stage_and_suggests_fixes(comfy):
    g = Graph()
    model, positive, negative, latent = tiny_inputs(g, "sd15")
    failing = g.node("TinyOutOfMemory", model=model, from_latent_size=16)
    g.node("SaveLatent", samples=cascade_node(g, failing, positive, negative, latent), filename_prefix="oom")
    error = comfy.expect_execution_error(g)
    assert error.exception_type.endswith("OutOfMemoryError")
    assert "out of memory in cascade stage 1 at 128x128" in error.message
    assert "smaller target" in error.message and "VAE Decode (Tiled)" in error.message
    assert "Original: simulated: no memory for a (2, 4, 16, 16) latent" in error.message  # the host's words (cond + uncond batch)


def test_input_model_is_identical_before_and_after_every_node(comfy):
    g = Graph()
    model, positive, negative, latent = tiny_inputs(g, "sd15")
    before = g.node("TinyModelFingerprint", model=model)  # runs first: the sampler takes its output
    sampler = cascade_node(g, before, positive, negative, latent)
    sigmas = g.node("SelfCascadePivotReschedule", model=before, scheduler="normal", steps=5, k=0.7, stage_steps=0)
    upscaled = g.node("SelfCascadePivotUpscale", samples=sampler, upscale_method="bilinear", scale_by=2.0, width=0,
                      height=0)
    stage = g.node("SamplerCustom", model=before, add_noise=True, noise_seed=3, cfg=4.0, positive=positive,
                   negative=negative, sampler=g.node("KSamplerSelect", sampler_name="euler"), sigmas=sigmas,
                   latent_image=upscaled)
    after = g.node("TinyModelFingerprint", model=model, after=stage)
    result = comfy.run(g)
    assert result.text(before.id) == result.text(after.id)


def test_plain_branch_beside_a_cascade_equals_a_graph_without_our_nodes(comfy):
    def plain_branch(g: Graph, model, positive, negative, latent):
        return g.node("KSampler", model=model, seed=5, steps=4, cfg=4.0, sampler_name="euler", scheduler="normal",
                      positive=positive, negative=negative, latent_image=latent, denoise=1.0)

    alone = Graph()
    save_alone = alone.node("SaveLatent", samples=plain_branch(alone, *tiny_inputs(alone, "sd15")), filename_prefix="alone")
    both = Graph()
    inputs = tiny_inputs(both, "sd15")
    both.node("SaveLatent", samples=cascade_node(both, *inputs), filename_prefix="beside")
    save_beside = both.node("SaveLatent", samples=plain_branch(both, *inputs), filename_prefix="plain")
    beside = comfy.run(both).latent(save_beside.id)
    forget_cached_outputs(comfy)
    reference = comfy.run(alone).latent(save_alone.id)
    assert torch.equal(beside, reference)


def test_same_seed_is_bit_identical_across_runs_and_k_matters(comfy):
    first_graph, first_save = saved_cascade("sd15", prefix="det_a", k=0.6)
    second_graph, second_save = saved_cascade("sd15", prefix="det_b", k=0.6)
    other_graph, other_save = saved_cascade("sd15", prefix="det_c", k=0.8)
    first = comfy.run(first_graph).latent(first_save.id)
    other = comfy.run(other_graph).latent(other_save.id)
    forget_cached_outputs(comfy)
    second = comfy.run(second_graph).latent(second_save.id)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_same_seed_is_bit_identical_across_a_server_restart(comfy, tmp_path):
    graph, save = saved_cascade("sd15", prefix="restart")
    first = comfy.run(graph).latent(save.id)
    with ComfyServer.for_checkout(tmp_path) as restarted, ComfyClient(restarted.url) as client:
        second = client.run(graph).latent(save.id)
    assert torch.equal(first, second)


def fingerprint_prompt(nonce: int) -> tuple[Graph, str]:
    """A digest of the cached tiny sd15 model object; ``nonce`` forces the digest node to run again."""
    g = Graph()
    model = tiny_inputs(g, "sd15")[0]
    probe = g.node("TinyModelFingerprint", model=model,
                   after=g.node("EmptyLatentImage", width=64 + 8 * nonce, height=64, batch_size=1))
    return g, probe.id


@pytest.mark.parametrize("during", ["base", "stage"])
def test_interrupt_stops_cleanly_and_leaves_nothing_behind(comfy, during):
    base_steps = 40
    before_graph, before_id = fingerprint_prompt(1)
    weights_before = comfy.run(before_graph).text(before_id)

    slow_graph, _ = saved_cascade("sd15", prefix="interrupted", steps=base_steps, seed=99)
    prompt_id = comfy.queue(slow_graph)
    interrupt_at = 2 if during == "base" else base_steps + 2
    events, interrupted = [], False
    for kind, data in comfy.events(prompt_id):
        events.append(kind)
        # newer hosts (0.33) throttle progress messages to one per 100 ms: the first at or past the step
        if kind == "progress" and data["value"] >= interrupt_at and not interrupted:
            requests.post(f"{comfy.url}/interrupt", json={}, timeout=30).raise_for_status()
            interrupted = True
    assert "execution_interrupted" in events and "execution_success" not in events

    after_graph, after_id = fingerprint_prompt(2)
    assert comfy.run(after_graph).text(after_id) == weights_before  # same cached model object, unchanged
    next_graph, next_save = saved_cascade("sd15", prefix=f"next_{during}", seed=123)
    on_used_model = comfy.run(next_graph).latent(next_save.id)
    forget_cached_outputs(comfy)
    on_fresh_model = comfy.run(next_graph).latent(next_save.id)
    assert torch.equal(on_used_model, on_fresh_model)
