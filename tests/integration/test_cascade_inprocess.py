"""The Self-Cascade KSampler against the same cascade built from the host's own core nodes, in-process.

The correctness anchor: KSampler (base) -> LatentUpscale -> SamplerCustom with Pivot Reschedule
sigmas and noise_seed = seed + r must give the node's output, for UNet and flow families.
The server-level twin of this test lives in tests/server.
"""
import copy

import pytest
import torch

import nodes as core
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
from selfcascade.nodes.cascade_nodes import PivotReschedule, PivotUpscale, SelfCascadeBaseLatent, SelfCascadeKSampler
from tiny_pack.models import build_conditioning, build_model, latent_channels

SEED, STEPS, CFG, K = 7, 6, 4.0, 0.7


def node_cascade(model, family, latent, scale_by=2.0, **overrides):
    cond = build_conditioning(family)
    args = dict(model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", positive=cond,
                negative=build_conditioning(family, seed=1), latent_image=latent, scale_by=scale_by, target_width=0,
                target_height=0, k=K, later_k=0.0, upscale_method="bilinear", stage_steps=0, denoise=1.0)
    args.update(overrides)
    output = SelfCascadeKSampler.execute(**args)
    return output.result[0]["samples"], output.ui.as_dict()


def core_cascade(model, family, latent, stages, factor=8):
    positive, negative = build_conditioning(family), build_conditioning(family, seed=1)
    (current,) = core.KSampler().sample(model, SEED, STEPS, CFG, "euler", "normal", positive, negative, latent, denoise=1.0)
    sigmas = PivotReschedule.execute(model, "normal", STEPS, K, 0).result[0]
    sampler = KSamplerSelect.execute("euler").result[0]
    for r in range(1, stages + 1):
        samples = current["samples"]
        (current,) = core.LatentUpscale().upscale(current, "bilinear", samples.shape[-1] * factor * 2,
                                                  samples.shape[-2] * factor * 2, "disabled")
        current = SamplerCustom.execute(model, True, SEED + r, CFG, positive, negative, sampler, sigmas, current).result[0]
    return current["samples"]


def empty_latent(family, size=8, frames=None):
    shape = (1, latent_channels(family), frames, size, size) if frames else (1, latent_channels(family), size, size)
    return {"samples": torch.zeros(shape)}


@pytest.mark.parametrize("family", ["sd15", "sdxl", "flux"])
def test_node_equals_hand_built_core_graph(family):
    model = build_model(family)
    ours, ui = node_cascade(model, family, empty_latent(family), scale_by=4.0)
    reference = core_cascade(model, family, empty_latent(family), stages=2)
    assert ours.shape == reference.shape == (1, latent_channels(family), 32, 32)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    report = ui["text"][0]
    assert "base: 64x64, 6 steps" in report and "stage 2: 256x256, K 0.70, 4 steps" in report


def test_video_cascade_keeps_the_frame_count():
    model = build_model("wan")
    latent = empty_latent("wan", size=4, frames=3)
    ours, ui = node_cascade(model, "wan", latent, scale_by=4.0)
    assert ours.shape == (1, 16, 3, 16, 16)
    assert "stage 2: 128x128" in ui["text"][0]
    assert torch.isfinite(ours).all()


def test_frame_batch_latents_keep_their_batch():
    model = build_model("sd15")
    latent = {"samples": torch.zeros((3, 4, 8, 8))}  # AnimateDiff-style: frames as batch
    ours, _ = node_cascade(model, "sd15", latent)
    assert ours.shape == (3, 4, 16, 16)


def test_same_seed_same_output_and_seed_matters():
    model = build_model("sd15")
    first, _ = node_cascade(model, "sd15", empty_latent("sd15"))
    second, _ = node_cascade(model, "sd15", empty_latent("sd15"))
    other, _ = node_cascade(model, "sd15", empty_latent("sd15"), seed=SEED + 1)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_target_at_or_below_base_is_plain_ksampler():
    model = build_model("sd15")
    ours, ui = node_cascade(model, "sd15", empty_latent("sd15"), scale_by=1.0)
    positive, negative = build_conditioning("sd15"), build_conditioning("sd15", seed=1)
    (reference,) = core.KSampler().sample(model, SEED, STEPS, CFG, "euler", "normal", positive, negative,
                                           empty_latent("sd15"))
    assert torch.equal(ours, reference["samples"])
    assert "single stage" in ui["text"][0]


def test_odd_target_is_rounded_and_reported():
    model = build_model("sd15")
    ours, ui = node_cascade(model, "sd15", empty_latent("sd15"), target_width=130, target_height=123)
    assert ours.shape[-2:] == (15, 16)
    assert "target 130x123 is not a multiple of 8 px; rounded to 128x120" in ui["text"][0]


def test_input_model_and_latent_are_untouched():
    model = build_model("sd15")
    options_before = copy.deepcopy(model.model_options)
    weights_before = {k: v.clone() for k, v in model.model.state_dict().items()}
    latent = empty_latent("sd15")
    node_cascade(model, "sd15", latent)
    assert model.model_options == options_before
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in weights_before.items())
    assert torch.count_nonzero(latent["samples"]) == 0 and latent["samples"].shape == (1, 4, 8, 8)


def test_lora_style_weight_patches_compose():
    model = build_model("sd15")
    patched = model.clone()
    key = "diffusion_model.input_blocks.0.0.weight"
    patched.add_patches({key: (torch.randn_like(model.model.state_dict()[key]) * 0.5,)}, 1.0)
    plain, _ = node_cascade(model, "sd15", empty_latent("sd15"))
    lora, _ = node_cascade(patched, "sd15", empty_latent("sd15"))
    reference = core_cascade(patched, "sd15", empty_latent("sd15"), stages=1)
    assert not torch.equal(plain, lora)
    torch.testing.assert_close(lora, reference, rtol=1e-5, atol=1e-5)


def test_base_latent_has_native_area_at_target_aspect():
    sd15, sdxl, wan = build_model("sd15"), build_model("sdxl"), build_model("wan")
    assert SelfCascadeBaseLatent.execute(sd15, 2048, 2048, 1, 1).result[0]["samples"].shape == (1, 4, 64, 64)
    assert SelfCascadeBaseLatent.execute(sdxl, 3840, 2160, 2, 1).result[0]["samples"].shape == (2, 4, 96, 168)
    assert SelfCascadeBaseLatent.execute(wan, 1664, 960, 1, 9).result[0]["samples"].shape == (1, 16, 3, 60, 104)


def test_pivot_upscale_is_spatial_only():
    video = {"samples": torch.randn((1, 16, 3, 4, 6))}
    out = PivotUpscale.execute(video, "bilinear", 2.0, 0, 0).result[0]["samples"]
    assert out.shape == (1, 16, 3, 8, 12)


def test_controlnet_hint_follows_every_stage():
    from tiny_pack.models import build_controlnet

    model = build_model("sd15")
    positive, negative = build_conditioning("sd15"), build_conditioning("sd15", seed=1)
    hint = torch.rand((1, 64, 64, 3))  # at the base size: the host resizes it to each stage's size
    controlled, _ = core.ControlNetApplyAdvanced().apply_controlnet(positive, negative, build_controlnet("sd15"),
                                                                     hint, 1.0, 0.0, 1.0)
    plain, _ = node_cascade(model, "sd15", empty_latent("sd15"))
    guided, ui = node_cascade(model, "sd15", empty_latent("sd15"), positive=controlled)
    assert guided.shape == plain.shape == (1, 4, 16, 16)
    assert torch.isfinite(guided).all() and not torch.equal(plain, guided)
    assert "stage 1: 128x128" in ui["text"][0]


def test_one_progress_bar_over_all_stages():
    import comfy.utils

    seen = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        node_cascade(build_model("sd15"), "sd15", empty_latent("sd15"), scale_by=4.0)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    totals = {total for _, total in seen}
    assert totals == {STEPS + 2 * 4}  # 6 base steps + two stages of 4 steps below K
    values = [value for value, _ in seen]
    assert values == sorted(values) and values[-1] == STEPS + 2 * 4


def test_interrupt_between_stages_stops_the_cascade(monkeypatch):
    import comfy.model_management
    import comfy.utils

    # newer hosts (0.33) throttle the hook to one call per 100 ms, which would skip the base's last step
    monkeypatch.setattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL", 0.0, raising=False)
    def interrupt_after_base(value, total, preview, node_id=None):
        if value == STEPS:
            comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(interrupt_after_base)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            node_cascade(build_model("sd15"), "sd15", empty_latent("sd15"))
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)


class AcceleratorOutOfMemory(RuntimeError):
    """What a newer host's ``is_oom`` counts as out of memory besides ``OOM_EXCEPTION`` (an accelerator error)."""


def failing_from_stage_1(error_type):
    """A clone of the tiny SD1.5 whose UNet raises ``error_type`` at stage 1's 16x16 latent, as a GPU would."""
    import comfy.patcher_extension

    def out_of_memory(executor, x, *args, **kwargs):
        if x.shape[-1] >= 16:
            raise error_type("the host's own words: tried to allocate 2.00 GiB")
        return executor(x, *args, **kwargs)

    model = build_model("sd15").clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_oom", out_of_memory)
    return model


def test_out_of_memory_keeps_the_hosts_message():
    import comfy.model_management

    with pytest.raises(comfy.model_management.OOM_EXCEPTION) as raised:
        node_cascade(failing_from_stage_1(comfy.model_management.OOM_EXCEPTION), "sd15", empty_latent("sd15"))
    message = str(raised.value)
    assert message.startswith("out of memory in cascade stage 1 at 128x128: choose a smaller target")
    assert message.endswith("Original: the host's own words: tried to allocate 2.00 GiB")


def test_out_of_memory_is_the_hosts_is_oom_where_it_has_one(monkeypatch):
    import comfy.model_management

    failing = failing_from_stage_1(AcceleratorOutOfMemory)
    monkeypatch.delattr(comfy.model_management, "is_oom", raising=False)  # this host's version: OOM_EXCEPTION only
    with pytest.raises(AcceleratorOutOfMemory, match="^the host's own words"):
        node_cascade(failing, "sd15", empty_latent("sd15"))
    monkeypatch.setattr(comfy.model_management, "is_oom", lambda error: isinstance(error, AcceleratorOutOfMemory),
                        raising=False)  # a newer host's test, which also counts accelerator errors
    with pytest.raises(AcceleratorOutOfMemory, match="^out of memory in cascade stage 1 at 128x128: .* Original: "
                                                     "the host's own words"):
        node_cascade(failing, "sd15", empty_latent("sd15"))


def test_pixel_space_pivot_equals_decode_resize_encode():
    from tiny_pack.models import build_vae

    model, vae = build_model("sd15"), build_vae()
    ours, _ = node_cascade(model, "sd15", empty_latent("sd15"), vae=vae)
    positive, negative = build_conditioning("sd15"), build_conditioning("sd15", seed=1)
    (base,) = core.KSampler().sample(model, SEED, STEPS, CFG, "euler", "normal", positive, negative, empty_latent("sd15"))
    (image,) = core.VAEDecode().decode(vae, base)
    (image,) = core.ImageScale().upscale(image, "bilinear", 128, 128, "disabled")
    (pivot,) = core.VAEEncode().encode(vae, image)
    sigmas = PivotReschedule.execute(model, "normal", STEPS, K, 0).result[0]
    sampler = KSamplerSelect.execute("euler").result[0]
    reference = SamplerCustom.execute(model, True, SEED + 1, CFG, positive, negative, sampler, sigmas, pivot).result[0]
    assert ours.shape == (1, 4, 16, 16)
    torch.testing.assert_close(ours, reference["samples"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler_name, scheduler", [("euler_ancestral", "karras"), ("dpmpp_2m", "sgm_uniform"),
                                                     ("uni_pc", "simple"), ("ddim", "ddim_uniform"),
                                                     ("dpmpp_sde", "beta"), ("lcm", "exponential")])
def test_any_host_sampler_and_scheduler(sampler_name, scheduler):
    ours, ui = node_cascade(build_model("sd15"), "sd15", empty_latent("sd15"), sampler_name=sampler_name,
                            scheduler=scheduler)
    assert ours.shape == (1, 4, 16, 16) and torch.isfinite(ours).all()
    assert "stage 1: 128x128" in ui["text"][0]
