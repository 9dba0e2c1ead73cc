"""The Self-Cascade KSampler through the real server: equal to the same cascade built from core nodes.

This is the correctness anchor at the level users meet it: API-format prompts on ComfyUI's own
executor, outputs read back from SaveLatent files.
"""
import pytest
import torch

from cascade_graphs import CFG, K, SEED, STEPS, cascade_node, saved_cascade, tiny_inputs
from harness import Graph


def core_prompt(family: str, ks: tuple[float, ...] = (K,), steps: int = STEPS) -> tuple[Graph, str]:
    """The cascade from core nodes: KSampler, then per stage LatentUpscale + Pivot Reschedule at that stage's K +
    SamplerCustom with noise seed ``seed + stage``; 64 px doubling per stage."""
    g = Graph()
    model, positive, negative, latent = tiny_inputs(g, family)
    stage = g.node("KSampler", model=model, seed=SEED, steps=steps, cfg=CFG, sampler_name="euler", scheduler="normal",
                   positive=positive, negative=negative, latent_image=latent, denoise=1.0)
    for index, k in enumerate(ks, start=1):
        size = 64 * 2**index
        upscaled = g.node("LatentUpscale", samples=stage, upscale_method="bilinear", width=size, height=size,
                          crop="disabled")
        sigmas = g.node("SelfCascadePivotReschedule", model=model, scheduler="normal", steps=steps, k=k, stage_steps=0)
        stage = g.node("SamplerCustom", model=model, add_noise=True, noise_seed=SEED + index, cfg=CFG,
                       positive=positive, negative=negative, sampler=g.node("KSamplerSelect", sampler_name="euler"),
                       sigmas=sigmas, latent_image=upscaled)
    return g, g.node("SaveLatent", samples=stage, filename_prefix=f"core_{family}").id


@pytest.mark.parametrize("family", ["sd15", "sdxl", "flux"])
def test_node_equals_core_node_cascade_through_the_server(comfy, family):
    graph, save = saved_cascade(family, prefix=f"cascade_{family}")
    ours = comfy.run(graph).latent(save.id)
    core_graph, core_save_id = core_prompt(family)
    reference = comfy.run(core_graph).latent(core_save_id)
    assert ours.shape == reference.shape == (1, 16 if family == "flux" else 4, 16, 16)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_later_stages_with_their_own_k_equal_the_core_node_cascade_cut_per_stage(comfy):
    graph, save = saved_cascade("sd15", prefix="cascade_later_k", scale_by=4.0, steps=10, k=0.7, later_k=0.4)
    ours = comfy.run(graph).latent(save.id)
    core_graph, core_save_id = core_prompt("sd15", ks=(0.7, 0.4), steps=10)
    reference = comfy.run(core_graph).latent(core_save_id)
    assert ours.shape == reference.shape == (1, 4, 32, 32)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    constant_graph, constant_save = saved_cascade("sd15", prefix="cascade_constant_k", scale_by=4.0, steps=10, k=0.7)
    assert not torch.allclose(comfy.run(constant_graph).latent(constant_save.id), ours)  # the later K did change stage 2


def test_report_is_returned_as_ui_text(comfy):
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), scale_by=4.0)
    g.node("SaveLatent", samples=sampler, filename_prefix="report")
    lines = comfy.run(g).text(sampler.id).splitlines()
    assert lines[0].startswith("base: 64x64, 5 steps,")
    assert lines[2].startswith("stage 2: 256x256, K 0.70, 3 steps,")


def test_video_model_runs_a_two_stage_cascade_with_its_frames(comfy):
    g = Graph()
    model = g.node("TinyModelLoader", family="wan", seed=0)
    # the tiny wan's native size is the real Wan's (832x480): start from a small empty video latent
    video = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=9, batch_size=1)
    sampler = cascade_node(g, model, g.node("TinyConditioning", family="wan", seed=0),
                           g.node("TinyConditioning", family="wan", seed=1), video, scale_by=4.0)
    save = g.node("SaveLatent", samples=sampler, filename_prefix="video")
    out = comfy.run(g).latent(save.id)
    assert out.shape == (1, 16, 3, 16, 16)  # 9 frames -> 3 latent frames, kept; 32 px -> 128 px in two stages


def masked_demo_inputs(g: Graph) -> tuple:
    """The demo model (1 px per latent cell) and its 32 px base latent with a noise mask over the left half."""
    demo = g.node("SelfCascadeDemoModel", count=2)
    base = g.node("SelfCascadeBaseLatent", model=demo, target_width=64, target_height=64, batch_size=1, length=1)
    left_half = g.node("MaskComposite", destination=g.node("SolidMask", value=0.0, width=32, height=32),
                       source=g.node("SolidMask", value=1.0, width=16, height=32), x=0, y=0, operation="add")
    return demo, g.node("SetLatentNoiseMask", samples=base, mask=left_half)


def test_hand_built_stage_sizes_by_the_model_s_family_and_keeps_the_noise_mask(comfy):
    """Pivot Upscale with the model connected sizes the demo model's pixel latent and keeps the mask, as the
    Self-Cascade KSampler does: the hand-built cascade equals it bit for bit."""
    ours = Graph()
    demo, masked = masked_demo_inputs(ours)
    sampler = cascade_node(ours, demo, demo.out(1), demo.out(2), masked, target_width=64, target_height=64)
    ours_save = ours.node("SaveLatent", samples=sampler, filename_prefix="masked_demo_cascade")
    cascade = comfy.run(ours).latent(ours_save.id)

    core = Graph()
    demo, masked = masked_demo_inputs(core)
    base = core.node("KSampler", model=demo, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal",
                     positive=demo.out(1), negative=demo.out(2), latent_image=masked, denoise=1.0)
    upscaled = core.node("SelfCascadePivotUpscale", samples=base, upscale_method="bilinear", scale_by=2.0, width=64,
                         height=64, model=demo)
    sigmas = core.node("SelfCascadePivotReschedule", model=demo, scheduler="normal", steps=STEPS, k=K, stage_steps=0)
    stage = core.node("SamplerCustom", model=demo, add_noise=True, noise_seed=SEED + 1, cfg=CFG, positive=demo.out(1),
                      negative=demo.out(2), sampler=core.node("KSamplerSelect", sampler_name="euler"), sigmas=sigmas,
                      latent_image=upscaled)
    core_save = core.node("SaveLatent", samples=stage, filename_prefix="masked_demo_core")
    result = comfy.run(core)
    assert result.text(upscaled.id) == "64x64 px"

    assert cascade.shape == (1, 3, 64, 64)
    torch.testing.assert_close(result.latent(core_save.id), cascade, rtol=1e-5, atol=1e-5)
    unmasked = Graph()
    demo = unmasked.node("SelfCascadeDemoModel", count=2)
    base = unmasked.node("SelfCascadeBaseLatent", model=demo, target_width=64, target_height=64, batch_size=1, length=1)
    sampler = cascade_node(unmasked, demo, demo.out(1), demo.out(2), base, target_width=64, target_height=64)
    save = unmasked.node("SaveLatent", samples=sampler, filename_prefix="unmasked_demo_cascade")
    assert not torch.allclose(comfy.run(unmasked).latent(save.id), cascade)  # the mask is really in play
