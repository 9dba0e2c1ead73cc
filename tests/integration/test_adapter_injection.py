"""Upsampler adapters injected into real tiny UNets: no-op at init, where features land, sharing, dtypes."""
from __future__ import annotations

import copy

import pytest
import torch

import comfy.model_management
import comfy.patcher_extension
import nodes as core
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample
from selfcascade.adapters.fileformat import AdapterError
from selfcascade.adapters.injection import apply_upsampler_adapter, check_compatible, direct_call_options
from selfcascade.adapters.modules import MIDDLE, AdapterSpec, UpsamplerAdapter, build_module, new_adapter, unet_layout
from selfcascade.sampling.cascade import CascadeRun, CascadeSettings
from selfcascade.sampling.families import detect_family
from selfcascade.sampling.plan import plan_stages
from selfcascade.sampling.schedule import pivot_sigmas
from tiny_pack.models import build_conditioning, build_controlnet, build_model

SETTINGS = CascadeSettings(seed=5, steps=5, cfg=4.0, sampler_name="euler", scheduler="normal")


def trained(adapter: UpsamplerAdapter, scale: float = 0.5, seed: int = 0) -> UpsamplerAdapter:
    """The adapter with every weight redrawn: what training would leave (the lite scale no longer zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapter.module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return adapter


def count_calls(adapter: UpsamplerAdapter) -> list:
    calls = []
    adapter.module.register_forward_hook(lambda module, args, output: calls.append([o.dtype for o in output]))
    return calls


def cascade(model, family: str, stage_patch=None, stages: int = 1, conditioning=None) -> torch.Tensor:
    plan = plan_stages(64, 64, 64 * 2 ** stages, 64 * 2 ** stages)
    latent = {"samples": torch.zeros((1, 4, 8, 8))}
    positive, negative = conditioning or (build_conditioning(family), build_conditioning(family, seed=1))
    output, _ = CascadeRun(model, positive, negative, plan, detect_family(model), SETTINGS, stage_patch=stage_patch,
                           console_bar=False).run(latent)
    return output["samples"]


def with_adapter(adapter, strength=1.0, start_percent=0.0, end_percent=1.0, pivots=None):
    def stage_patch(model, pivot, index):
        if pivots is not None:
            pivots.append(pivot.clone())
        return apply_upsampler_adapter(model, adapter, pivot, strength, start_percent, end_percent)
    return stage_patch


def unet_inputs(family: str, size: int = 16, batch: int = 2, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    context = torch.cat([build_conditioning(family, seed=s)[0][0] for s in range(batch)])
    inputs = {"x": torch.randn((batch, 4, size, size), generator=generator), "t": torch.full((batch,), 2.0),
              "c_crossattn": context}
    if family == "sdxl":
        inputs["y"] = torch.randn((batch, 32 + 6 * 256), generator=generator)
    return inputs


def call_unet(model, inputs: dict, transformer_options: dict) -> torch.Tensor:
    arguments = {k: v for k, v in inputs.items() if k not in ("x", "t")}
    return model.model.apply_model(inputs["x"], inputs["t"], transformer_options=transformer_options, **arguments)


@pytest.mark.parametrize("family, injection", [("sd15", "skip"), ("sd20v", "skip"), ("sdxl", "skip"),
                                               ("sdxl", "backbone")])
def test_untrained_lite_adapter_is_bit_identical_through_a_cascade(family, injection):
    model = build_model(family)
    adapter = new_adapter(model, "lite", injection)
    calls = count_calls(adapter)
    plain = cascade(model, family)
    adapted = cascade(model, family, with_adapter(adapter))
    assert len(calls) > 0, "the adapter never ran: the comparison would prove nothing"
    assert torch.equal(plain, adapted)


def test_trained_adapter_changes_the_output_only_from_the_first_high_res_stage_on():
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    plain_pivots, adapted_pivots = [], []
    plain = cascade(model, "sd15", with_adapter(adapter, strength=0.0, pivots=plain_pivots), stages=2)
    adapted = cascade(model, "sd15", with_adapter(adapter, pivots=adapted_pivots), stages=2)
    assert torch.equal(plain_pivots[0], adapted_pivots[0])  # the base stage never sees the adapter
    assert not torch.equal(plain_pivots[1], adapted_pivots[1])  # stage 1's output differs
    assert not torch.equal(plain, adapted)
    assert torch.isfinite(adapted).all()


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_the_pivot_pass_computes_what_the_host_unet_forward_computes_on_the_pivot(family):
    """The pivot pass copies half of UNetModel._forward: pinned to the host's own forward, so a host change
    that breaks the copy fails here. Hooks on each block's last layer record what the host's forward
    computes on the pivot; the adapter must have been fed exactly those features and that embedding."""
    model = build_model(family)
    adapter = trained(new_adapter(model), scale=0.1)
    pivot = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(4))
    patched = apply_upsampler_adapter(model, adapter, pivot)
    fed = {}
    adapter.module.register_forward_pre_hook(lambda module, args: fed.update(features=args[0], emb=args[1]))
    inputs = unet_inputs(family, size=16)
    with torch.no_grad():
        call_unet(patched, inputs, direct_call_options(patched))

    unet = model.model.diffusion_model
    points = adapter.spec.points
    blocks = {point: unet.middle_block if point == MIDDLE else unet.input_blocks[point[1]] for point in points}
    seen = {}
    hooked = {**{point: block[-1] for point, block in blocks.items()}, "time_embed": unet.time_embed,
              **({"label_emb": unet.label_emb} if unet.num_classes is not None else {})}
    handles = [module.register_forward_hook(lambda module, args, output, key=key: seen.__setitem__(key, output))
               for key, module in hooked.items()]
    timesteps = model.get_model_object("model_sampling").timestep(inputs["t"]).float()
    with torch.no_grad():
        unet(model.get_model_object("latent_format").process_in(pivot), timesteps, inputs["c_crossattn"],
             inputs.get("y"), transformer_options={})
    for handle in handles:
        handle.remove()
    assert torch.equal(fed["emb"], seen["time_embed"] + seen["label_emb"] if "label_emb" in seen else seen["time_embed"])
    assert len(fed["features"]) == len(points)
    for point, feature in zip(points, fed["features"]):
        assert torch.equal(feature, seen[point]), point


@pytest.mark.parametrize("family", ["sd15", "sd20v", "sdxl"])
def test_points_are_the_last_block_of_each_level_in_the_real_unet(family):
    model = build_model(family)
    unet = model.model.diffusion_model
    layout = unet_layout(model.model.model_config.unet_config)
    shapes = {}
    recorder = model.clone()
    def record_shape(h, options):
        shapes[options["block"][1]] = h.shape
        return h
    recorder.set_model_input_block_patch(record_shape)
    inputs = unet_inputs(family)
    call_unet(recorder, inputs, direct_call_options(recorder))
    downsamplers = [i for i, block in enumerate(unet.input_blocks) if isinstance(block[0], Downsample)]
    *level_ends, last_level, middle = layout.points
    assert [p[1] for p in level_ends] == downsamplers
    assert last_level == ("input", len(unet.input_blocks) - 1) and middle == ("middle", 0)
    for level, (_, index) in enumerate(layout.points[:-1]):
        assert shapes[index][1] == layout.channels[level]
        expected = 16 // 2 ** min(level + 1, len(level_ends))
        assert tuple(shapes[index][-2:]) == (expected, expected)
    assert layout.emb_dim == unet.time_embed[-1].out_features


def record_features(model) -> dict:
    """Patches appended after the adapter's: what each block hands on (backbone h, skip hsp, output h)."""
    seen = {}

    def input_patch(h, options):
        seen[("backbone", options["block"][1])] = h.clone()
        return h

    def output_patch(h, hsp, options):
        seen[("skip", options["block"][1])] = hsp.clone()
        seen[("output_h", options["block"][1])] = h.clone()
        return h, hsp
    model.set_model_input_block_patch_after_skip(input_patch)
    model.set_model_output_block_patch(output_patch)
    return seen


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_skip_injection_changes_exactly_the_skips_of_the_points_and_the_middle(family):
    model = build_model(family)
    adapter = trained(new_adapter(model, "lite", "skip"))
    plain, adapted = model.clone(), apply_upsampler_adapter(model, adapter, torch.randn(2, 4, 8, 8))
    before, after = record_features(plain), record_features(adapted)
    inputs = unet_inputs(family)
    call_unet(plain, inputs, direct_call_options(plain))
    call_unet(adapted, inputs, direct_call_options(adapted))
    blocks = len(model.model.diffusion_model.input_blocks)
    skip_targets = {blocks - 1 - index for kind, index in adapter.spec.points if kind == "input"}
    for index in range(blocks):
        assert torch.equal(before[("backbone", index)], after[("backbone", index)])  # encoder untouched
        assert torch.equal(before[("skip", index)], after[("skip", index)]) == (index not in skip_targets), index
    assert not torch.equal(before[("output_h", 0)], after[("output_h", 0)])  # the middle feature


def test_backbone_injection_changes_the_path_after_the_first_point_but_not_its_stored_skip():
    model = build_model("sdxl")
    adapter = trained(new_adapter(model, "lite", "backbone"))
    plain, adapted = model.clone(), apply_upsampler_adapter(model, adapter, torch.randn(2, 4, 8, 8))
    before, after = record_features(plain), record_features(adapted)
    inputs = unet_inputs("sdxl")
    call_unet(plain, inputs, direct_call_options(plain))
    call_unet(adapted, inputs, direct_call_options(adapted))
    first = adapter.spec.points[0][1]
    for index in range(first):
        assert torch.equal(before[("backbone", index)], after[("backbone", index)])
    assert not torch.equal(before[("backbone", first)], after[("backbone", first)])
    skip_of_first = len(model.model.diffusion_model.input_blocks) - 1 - first
    assert torch.equal(before[("skip", skip_of_first)], after[("skip", skip_of_first)])  # stored before the add


def test_wrong_points_or_widths_fail_loudly():
    model = build_model("sdxl")
    good = new_adapter(model).spec
    shifted = AdapterSpec(good.variant, good.family, good.channels, good.emb_dim, good.injection,
                          (("input", 2),) + good.points[1:])
    for spec, message in ((shifted, r"at blocks \[\('input', 2\)"),
                          (AdapterSpec(good.variant, "sd15", good.channels, good.emb_dim, good.injection, good.points),
                           "adapter for sd15 does not fit this sdxl model"),
                          (AdapterSpec(good.variant, good.family, (32, 64, 128, 256), good.emb_dim, good.injection,
                                       good.points), "expects channels"),
                          (AdapterSpec(good.variant, good.family, good.channels, 1280, good.injection, good.points),
                           "embedding width of 1280")):
        with pytest.raises(AdapterError, match=message):
            apply_upsampler_adapter(model, UpsamplerAdapter(spec, build_module(spec)), torch.zeros(1, 4, 8, 8))
    with pytest.raises(AdapterError, match="needs a UNet model.*flux"):
        check_compatible(new_adapter(model), build_model("flux"))


def test_bad_pivots_and_windows_are_refused_before_sampling():
    model = build_model("sd15")
    adapter = new_adapter(model)
    for pivot, message in ((torch.zeros(1, 16, 8, 8), "16 channels, this model's latents have 4"),
                           (torch.zeros(1, 4, 2, 8, 8), "must be an image latent"),
                           (torch.full((1, 4, 8, 8), float("nan")), "NaN")):
        with pytest.raises(AdapterError, match=message):
            apply_upsampler_adapter(model, adapter, pivot)
    with pytest.raises(AdapterError, match="0 <= start <= end <= 1"):
        apply_upsampler_adapter(model, adapter, torch.zeros(1, 4, 8, 8), start_percent=0.8, end_percent=0.2)


def test_input_model_gives_the_same_result_and_keeps_its_options():
    model = build_model("sdxl")
    options_before = copy.deepcopy(model.model_options)
    wrappers_before = copy.deepcopy(model.wrappers)
    before = cascade(model, "sdxl")
    patched = apply_upsampler_adapter(model, trained(new_adapter(model)), torch.randn(1, 4, 8, 8))
    cascade(patched, "sdxl")
    assert torch.equal(cascade(model, "sdxl"), before)
    assert model.model_options == options_before and model.wrappers == wrappers_before == {}
    assert patched.model is model.model and patched is not model


def test_adapter_weights_exist_once_however_many_clones():
    model = build_model("sdxl")
    adapter = new_adapter(model, "official-sdxl")
    patched = apply_upsampler_adapter(model, adapter, torch.randn(1, 4, 8, 8))
    clones = [patched] + [patched.clone() for _ in range(4)]
    clones.append(clones[-1].clone())
    storages, modules = set(), set()
    for clone in clones:
        for patch_list in clone.model_options["transformer_options"]["patches"].values():
            for patch in patch_list:
                for host in patch.models():
                    modules.add(id(host.model))
                    storages |= {p.untyped_storage().data_ptr() for p in host.model.parameters()}
        for wrapper in clone.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL):
            storages |= {p.untyped_storage().data_ptr() for p in wrapper.__self__.adapter.module.parameters()}
    assert modules == {id(adapter.module)}
    assert storages == {p.untyped_storage().data_ptr() for p in adapter.module.parameters()}
    assert len(storages) == len(list(adapter.module.parameters()))


def test_the_host_loads_the_adapter_with_the_model():
    model = build_model("sd15")
    adapter = new_adapter(model)
    cascade(model, "sd15", with_adapter(adapter))
    loaded = [entry.model for entry in comfy.model_management.current_loaded_models]
    assert any(patcher is not None and patcher.model is adapter.module for patcher in loaded)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_run_the_adapter_in_their_dtype(dtype):
    model = build_model("sdxl")
    model.model.diffusion_model.to(dtype)
    model.model.diffusion_model.dtype = dtype
    adapter = trained(new_adapter(model), scale=0.05)
    calls = count_calls(adapter)
    patched = apply_upsampler_adapter(model, adapter, torch.randn(1, 4, 8, 8))
    patched.model_patches_to(torch.device("cpu"))  # what the host does on load: device, then dtype
    patched.model_patches_to(dtype)
    output = cascade(patched, "sdxl")
    assert torch.isfinite(output).all()
    assert calls and all(d == dtype for step in calls for d in step)
    assert all(p.dtype == torch.float32 for p in adapter.module.parameters())  # one fp32 copy serves every dtype
    zero = new_adapter(model)
    assert torch.equal(cascade(model, "sdxl", with_adapter(zero)), cascade(model, "sdxl"))


def test_sigma_window_and_strength():
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    calls = count_calls(adapter)
    plain = cascade(model, "sd15")
    assert torch.equal(cascade(model, "sd15", with_adapter(adapter, strength=0.0)), plain)
    assert torch.equal(cascade(model, "sd15", with_adapter(adapter, start_percent=0.0, end_percent=0.0)), plain)
    assert calls == []
    sampling = model.get_model_object("model_sampling")
    stage = pivot_sigmas(sampling, "normal", SETTINGS.steps, SETTINGS.k, 0)
    assert not torch.equal(cascade(model, "sd15", with_adapter(adapter, end_percent=0.9)), plain)
    sigma_end = sampling.percent_to_sigma(0.9)
    assert len(calls) == int((stage[:-1] >= sigma_end).sum()) < len(stage) - 1  # euler: one call per step


def test_odd_sizes_and_pivots_of_any_size_are_resized_to_fit():
    model = build_model("sd15")
    adapter = trained(new_adapter(model))
    inputs = unet_inputs("sd15", size=18)
    plain = call_unet(model, inputs, {})
    for pivot_size in (9, 8):
        patched = apply_upsampler_adapter(model, adapter, torch.randn(1, 4, pivot_size, pivot_size))
        output = call_unet(patched, inputs, direct_call_options(patched))
        assert output.shape == plain.shape and torch.isfinite(output).all() and not torch.equal(output, plain)


def test_each_cond_chunk_sees_the_pivot_as_if_alone():
    model = build_model("sdxl")
    patched = apply_upsampler_adapter(model, trained(new_adapter(model)), torch.randn(1, 4, 8, 8))
    inputs = unet_inputs("sdxl", batch=2)
    batched = call_unet(patched, inputs, direct_call_options(patched))
    for row in range(2):
        alone = call_unet(patched, {k: v[row:row + 1] for k, v in inputs.items()}, direct_call_options(patched))
        torch.testing.assert_close(batched[row:row + 1], alone, rtol=1e-4, atol=1e-5)


def test_direct_call_options_let_gradients_reach_the_adapter_through_a_frozen_model():
    model = build_model("sdxl")
    model.model.diffusion_model.requires_grad_(False)  # as the trainer freezes it
    adapter = trained(new_adapter(model), scale=0.1)
    patched = apply_upsampler_adapter(model, adapter, torch.randn(2, 4, 8, 8))
    options_before = copy.deepcopy(patched.model_options)
    call_unet(patched, unet_inputs("sdxl"), direct_call_options(patched)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.module.parameters())
    assert patched.model_options == options_before


def test_official_layout_adapter_runs_in_backbone_mode():
    model = build_model("sdxl")
    adapter = new_adapter(model, "official-sdxl")
    # two ResBlocks per point, each 18C^2 + C(E + 7) (at SDXL's E = 1280: 18C^2 + 1287C)
    assert adapter.parameter_count() == sum(2 * (18 * c * c + c * (128 + 7)) for c in (32, 64, 128, 128))
    assert adapter.spec.injection == "backbone"
    plain = cascade(model, "sdxl")
    adapted = cascade(model, "sdxl", with_adapter(adapter))  # untrained official = nearest copy: not a no-op
    assert torch.isfinite(adapted).all() and not torch.equal(plain, adapted)
    with pytest.raises(ValueError, match="official-sdxl layout needs an SDXL model"):
        new_adapter(build_model("sd15"), "official-sdxl")


def test_controlnet_and_adapter_compose():
    model = build_model("sd15")
    hint = torch.rand((1, 64, 64, 3), generator=torch.Generator().manual_seed(3))
    controlled = core.ControlNetApplyAdvanced().apply_controlnet(
        build_conditioning("sd15"), build_conditioning("sd15", seed=1), build_controlnet("sd15"), hint, 1.0, 0.0, 1.0)
    zero = new_adapter(model)
    calls = count_calls(zero)
    with_control = cascade(model, "sd15", conditioning=controlled)
    assert not torch.equal(with_control, cascade(model, "sd15"))  # the control is really applied
    assert torch.equal(cascade(model, "sd15", with_adapter(zero), conditioning=controlled), with_control)
    assert calls
    adapted = cascade(model, "sd15", with_adapter(trained(new_adapter(model))), conditioning=controlled)
    assert torch.isfinite(adapted).all() and not torch.equal(adapted, with_control)
