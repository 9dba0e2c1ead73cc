"""DiT upsampler adapters injected into the host's Flux transformer (the tiny Flux and the flow demo model):
no-op at init, the pivot pass on the pivot's own grid, only image tokens touched, sharing, dtypes, refusals."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import nodes as core
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom
from selfcascade.adapters.dit_injection import DiTInjection
from selfcascade.adapters.fileformat import AdapterError, load_adapter, save_adapter
from selfcascade.adapters.injection import apply_upsampler_adapter, check_compatible, direct_call_options
from selfcascade.adapters.modules import DIT_LITE, UpsamplerAdapter, build_module, dit_layout, new_adapter
from selfcascade.adapters.stage_patch import adapter_stage_patch
from selfcascade.adapters.training import host_training, saved_activation_copies
from selfcascade.models.demo import flow_demo_model
from selfcascade.nodes.adapter_nodes import ADAPTER_FOLDER, ApplyUpsamplerAdapter, LoadUpsamplerAdapter
from selfcascade.nodes.cascade_nodes import PivotReschedule, SelfCascadeKSampler
from selfcascade.nodes.upscale_nodes import SelfCascadeUpscale
from selfcascade.sampling.cascade import CascadeRun, CascadeSettings
from selfcascade.sampling.families import detect_family
from selfcascade.sampling.plan import plan_stages
from test_adapter_injection import count_calls, trained
from tiny_pack.models import build_conditioning, build_flux_vae, build_model

SETTINGS = CascadeSettings(seed=5, steps=4, cfg=3.0, sampler_name="euler", scheduler="simple")


def flow_demo() -> comfy.model_patcher.ModelPatcher:
    """The flow demo model with seeded normal(0, 0.02) weights, as the tiny models (its trained file is being redone)."""
    base = flow_demo_model.build_flow_model()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in base.diffusion_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(base, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())


# name -> (model builder, latent channels, base latent side, pixels per latent cell, conditioning builder)
MODELS = {
    "flux": (lambda: build_model("flux"), 16, 8, 8, lambda seed: build_conditioning("flux", seed=seed)),
    "flux2": (lambda: build_model("flux2"), 128, 8, 16, lambda seed: build_conditioning("flux2", seed=seed)),
    "flow-demo": (flow_demo, 3, 32, 1, lambda seed: flow_demo_model.conditioning(
        torch.randn((1, 4, flow_demo_model.demo_model.CONTEXT_DIM), generator=torch.Generator().manual_seed(seed)))),
}


def cascade(name: str, model, stage_patch=None, stages: int = 1, pivots=None) -> torch.Tensor:
    _, channels, side, factor, conditioning = MODELS[name]
    pixels = side * factor
    plan = plan_stages(pixels, pixels, pixels * 2 ** stages, pixels * 2 ** stages)
    latent = {"samples": torch.zeros((1, channels, side, side))}

    def recording(stage_model, pivot, index):
        pivots.append(pivot.clone())
        return stage_patch(stage_model, pivot, index)
    patch = recording if pivots is not None else stage_patch
    output, _ = CascadeRun(model, conditioning(0), conditioning(1), plan, detect_family(model), SETTINGS,
                           stage_patch=patch, console_bar=False).run(latent)
    return output["samples"]


def with_adapter(adapter, strength=1.0):
    return lambda model, pivot, index: apply_upsampler_adapter(model, adapter, pivot, strength)


def model_inputs(name: str, side: int, batch: int = 2, seed: int = 0) -> dict:
    _, channels, _, _, conditioning = MODELS[name]
    generator = torch.Generator().manual_seed(seed)
    conds = [conditioning(s)[0] for s in range(batch)]
    return {"x": torch.randn((batch, channels, side, side), generator=generator), "t": torch.full((batch,), 0.6),
            "c_crossattn": torch.cat([c[0] for c in conds]), "y": torch.cat([c[1]["pooled_output"] for c in conds])}


def call_model(model, inputs: dict, transformer_options: dict) -> torch.Tensor:
    arguments = {k: v for k, v in inputs.items() if k not in ("x", "t")}
    return model.model.apply_model(inputs["x"], inputs["t"], transformer_options=transformer_options, **arguments)


def test_points_come_from_the_depth_as_the_first_half_of_the_blocks():
    flux_dev = {"depth": 19, "depth_single_blocks": 38, "hidden_size": 3072}
    assert dit_layout(flux_dev).points == (("double_block", 6), ("double_block", 13), ("single_block", 1),
                                           ("single_block", 9))
    assert dit_layout(flux_dev).channels == (3072,) * 4
    assert dit_layout({"depth": 1, "depth_single_blocks": 1, "hidden_size": 64}).points == (("double_block", 0),)
    demo = dit_layout(flow_demo_model.FLUX_CONFIG)
    assert demo.points == (("double_block", 0), ("double_block", 1), ("single_block", 0))
    assert dit_layout({"depth": 0, "depth_single_blocks": 4, "hidden_size": 8}).points == (
        ("single_block", 0), ("single_block", 1))


@pytest.mark.parametrize("name", list(MODELS))
def test_untrained_dit_adapter_is_bit_identical_through_a_cascade(name):
    model = MODELS[name][0]()
    adapter = new_adapter(model, DIT_LITE)
    assert adapter.spec.family == detect_family(model).name and adapter.spec.injection == "backbone"
    calls = count_calls(adapter)
    plain = cascade(name, model)
    adapted = cascade(name, model, with_adapter(adapter))
    assert len(calls) > 0, "the adapter never ran: the comparison would prove nothing"
    assert torch.equal(plain, adapted)


@pytest.mark.parametrize("name", list(MODELS))
def test_trained_dit_adapter_changes_the_output_only_from_the_first_high_res_stage_on(name):
    model = MODELS[name][0]()
    adapter = trained(new_adapter(model, DIT_LITE))
    plain_pivots, adapted_pivots = [], []
    plain = cascade(name, model, with_adapter(adapter, strength=0.0), stages=2, pivots=plain_pivots)
    adapted = cascade(name, model, with_adapter(adapter), stages=2, pivots=adapted_pivots)
    assert torch.equal(plain_pivots[0], adapted_pivots[0])  # the base stage never sees the adapter
    assert not torch.equal(plain_pivots[1], adapted_pivots[1])
    assert not torch.equal(plain, adapted) and torch.isfinite(adapted).all()


def test_the_stage_patch_takes_a_dit_adapter_and_checks_it_was_applied():
    model = build_model("flux")
    adapter = trained(new_adapter(model, DIT_LITE))
    patch = adapter_stage_patch(model, adapter, 1.0)
    assert not torch.equal(cascade("flux", model, patch), cascade("flux", model))


def test_the_pivot_pass_runs_the_first_blocks_on_the_pivots_own_grid_and_positions():
    """Hooks on the blocks record what the pivot pass gives them: the pivot's tokens with positions of the pivot's
    grid, the call's text; the blocks after the last point never run on the pivot."""
    name = "flow-demo"
    model = MODELS[name][0]()
    adapter = trained(new_adapter(model, DIT_LITE), scale=0.1)
    pivot = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(4))  # half of the call's 32 px
    patched = apply_upsampler_adapter(model, adapter, pivot)
    fed = {}
    adapter.module.register_forward_pre_hook(lambda module, args: fed.update(features=args[0], timesteps=args[1],
                                                                            grid=args[2], target=args[3]))
    flux = model.model.diffusion_model
    seen = []
    blocks = [*(("double", b) for b in flux.double_blocks), *(("single", b) for b in flux.single_blocks)]
    handles = [block.register_forward_hook(lambda module, args, kwargs, output, kind=kind: seen.append(
        (kind, kwargs["img"].shape[1] if "img" in kwargs else args[0].shape[1], kwargs["pe"].shape[2])),
        with_kwargs=True) for kind, block in blocks]
    inputs = model_inputs(name, side=32)
    with torch.no_grad():
        call_model(patched, inputs, direct_call_options(patched))
    for handle in handles:
        handle.remove()
    text = inputs["c_crossattn"].shape[1]
    # the pivot pass (4x4 tokens of 4 px patches from the 16 px pivot) runs double 0, double 1, single 0 and stops
    assert seen[:3] == [("double", 16, text + 16), ("double", 16, text + 16), ("single", text + 16, text + 16)]
    assert seen[3:] == [(kind, 64 if kind == "double" else text + 64, text + 64) for kind, _ in blocks]  # 8x8 tokens
    assert (fed["grid"], fed["target"]) == ((4, 4), (8, 8))
    # the features equal the host's own forward on the pivot, read after each point's block
    reference = {}
    points = adapter.spec.points
    blocks = {point: (flux.double_blocks if point[0] == "double_block" else flux.single_blocks)[point[1]]
              for point in points}
    handles = [blocks[point].register_forward_hook(
        lambda module, args, kwargs, output, point=point: reference.__setitem__(  # copies: blocks add in place
            point, tuple(o.clone() for o in output) if isinstance(output, tuple) else output.clone()), with_kwargs=True)
        for point in points]
    timesteps = model.get_model_object("model_sampling").timestep(inputs["t"]).float()
    with torch.no_grad():
        flux(model.get_model_object("latent_format").process_in(pivot), timesteps, inputs["c_crossattn"], inputs["y"],
             transformer_options={})
    for handle in handles:
        handle.remove()
    assert torch.equal(fed["timesteps"], timesteps)
    for point, feature in zip(points, fed["features"]):
        expected = reference[point][0] if point[0] == "double_block" else reference[point][:, text:]
        assert torch.equal(feature, expected), point


def record_tokens(model) -> dict:
    """Replace patches around those on ``model``'s points: what each point's block hands on (tokens copied)."""
    seen = {}

    def recorder(point, inner):
        def patch(args, extra):
            out = inner(args, extra) if inner is not None else extra["original_block"](args)
            seen[point] = {k: v.clone() for k, v in out.items() if isinstance(v, torch.Tensor)}
            return out
        return patch
    replace = model.model_options["transformer_options"].get("patches_replace", {}).get("dit", {})
    for point in dit_layout(model.model.model_config.unet_config).points:
        model.set_model_patch_replace(recorder(point, replace.get(point)), "dit", *point)
    return seen


@pytest.mark.parametrize("name", list(MODELS))
def test_the_adapter_adds_to_image_tokens_only(name):
    """At each point, what the block computed (recorded inside the adapter's patch) against what the adapter's
    patch hands on (recorded outside it): text tokens identical, every image token changed."""
    model = MODELS[name][0]()
    adapter = trained(new_adapter(model, DIT_LITE))
    side = 16
    inner = model.clone()
    computed = record_tokens(inner)
    patched = apply_upsampler_adapter(inner, adapter, torch.randn((1, MODELS[name][1], side // 2, side // 2)))
    handed_on = record_tokens(patched)
    inputs = model_inputs(name, side)
    call_model(patched, inputs, direct_call_options(patched))
    text = inputs["c_crossattn"].shape[1]
    for point in adapter.spec.points:
        before, after = computed[point], handed_on[point]
        if point[0] == "double_block":
            assert torch.equal(before["txt"], after["txt"]), point
            changed = before["img"] != after["img"]
        else:
            assert torch.equal(before["img"][:, :text], after["img"][:, :text]), point
            changed = before["img"][:, text:] != after["img"][:, text:]
        assert changed.any(dim=-1).all(), point


def test_input_model_its_weights_and_options_are_untouched():
    model = build_model("flux")
    options_before = copy.deepcopy(model.model_options)
    weights = {name: (p, p.detach().clone()) for name, p in model.model.named_parameters()}
    before = cascade("flux", model)
    patched = apply_upsampler_adapter(model, trained(new_adapter(model, DIT_LITE)), torch.randn(1, 16, 8, 8))
    cascade("flux", patched)
    assert torch.equal(cascade("flux", model), before)
    assert model.model_options == options_before and model.wrappers == {}
    assert patched.model is model.model and patched is not model
    for name, (parameter, value) in weights.items():
        assert dict(model.model.named_parameters())[name] is parameter and torch.equal(parameter, value), name


def test_clones_share_the_adapter_weights():
    model = build_model("flux")
    adapter = new_adapter(model, DIT_LITE)
    patched = apply_upsampler_adapter(model, adapter, torch.randn(1, 16, 8, 8))
    clones = [patched] + [patched.clone() for _ in range(3)]
    clones.append(clones[-1].clone())
    storages, modules = set(), set()
    for clone in clones:
        for patch in clone.model_options["transformer_options"]["patches_replace"]["dit"].values():
            for host in patch.models():
                modules.add(id(host.model))
                storages |= {p.untyped_storage().data_ptr() for p in host.model.parameters()}
        for wrapper in clone.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL):
            storages |= {p.untyped_storage().data_ptr() for p in wrapper.__self__.adapter.module.parameters()}
    assert modules == {id(adapter.module)}
    assert storages == {p.untyped_storage().data_ptr() for p in adapter.module.parameters()}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_run_the_adapter_in_their_dtype(dtype):
    model = build_model("flux")
    model.model.diffusion_model.to(dtype)
    model.model.diffusion_model.dtype = dtype
    model.model.manual_cast_dtype = None
    adapter = trained(new_adapter(model, DIT_LITE), scale=0.05)
    calls = count_calls(adapter)
    patched = apply_upsampler_adapter(model, adapter, torch.randn(1, 16, 8, 8))
    patched.model_patches_to(torch.device("cpu"))  # what the host does on load: device, then dtype
    patched.model_patches_to(dtype)
    output = call_model(patched, model_inputs("flux", 16), direct_call_options(patched))
    assert torch.isfinite(output).all()
    assert calls and all(d == dtype for call in calls for d in call)
    assert all(p.dtype == torch.float32 for p in adapter.module.parameters())  # one fp32 copy serves every dtype


def test_the_host_loads_the_adapter_with_the_model():
    model = build_model("flux")
    adapter = new_adapter(model, DIT_LITE)
    cascade("flux", model, with_adapter(adapter))
    loaded = [entry.model for entry in comfy.model_management.current_loaded_models]
    assert any(patcher is not None and patcher.model is adapter.module for patcher in loaded)


def test_mismatched_families_are_refused_naming_both():
    flux, sd15 = build_model("flux"), build_model("sd15")
    dit_adapter, unet_adapter = new_adapter(flux, DIT_LITE), new_adapter(sd15)
    with pytest.raises(AdapterError, match=r"dit-lite upsampler adapter for flux needs a Flux-style transformer.*"
                                           r"this is a sd15 model.*load a lite adapter made for sd15"):
        apply_upsampler_adapter(sd15, dit_adapter, torch.zeros(1, 4, 8, 8))
    with pytest.raises(AdapterError, match=r"lite upsampler adapter for sd15 needs a UNet model.*this is a flux "
                                           r"model.*load a dit-lite adapter made for flux"):
        check_compatible(unet_adapter, flux)
    with pytest.raises(AdapterError, match="adapter for flux does not fit this selfcascade-demo-flow model"):
        check_compatible(dit_adapter, flow_demo())
    with pytest.raises(AdapterError, match="Flux-style transformer.*this is a wan model"):
        check_compatible(dit_adapter, build_model("wan"))
    with pytest.raises(ValueError, match="use variant 'dit-lite'"):
        new_adapter(flux, "lite")
    with pytest.raises(ValueError, match="needs a Flux-style transformer.*sd15"):
        new_adapter(sd15, DIT_LITE)


def test_another_architecture_of_the_family_is_refused():
    model = build_model("flux")
    spec = dataclasses.replace(new_adapter(model, DIT_LITE).spec, channels=(128,), points=(("double_block", 0),))
    with pytest.raises(AdapterError, match=r"expects width \[128\].*this model has \[64\]"):
        apply_upsampler_adapter(model, UpsamplerAdapter(spec, build_module(spec)), torch.zeros(1, 16, 8, 8))


def test_a_replace_patch_already_on_a_point_still_runs_under_the_adapter():
    model = build_model("flux")
    calls = []

    def existing(args, extra):
        calls.append(args["img"].shape[1])
        return extra["original_block"](args)
    user = model.clone()
    user.set_model_patch_replace(existing, "dit", "double_block", 0)
    patched = apply_upsampler_adapter(user, new_adapter(model, DIT_LITE), torch.randn(1, 16, 8, 8))
    inputs = model_inputs("flux", 16)
    assert torch.equal(call_model(patched, inputs, direct_call_options(patched)),
                       call_model(user, inputs, direct_call_options(user)))
    assert calls == [64, 64]  # the high-res pass only (8x8 tokens), once per call; never the pivot pass


def test_file_round_trip_keeps_variant_family_and_weights(tmp_path):
    model = build_model("flux")
    adapter = trained(new_adapter(model, DIT_LITE), scale=0.1)
    save_adapter(tmp_path / "dit.safetensors", adapter)
    loaded = load_adapter(tmp_path / "dit.safetensors")
    assert loaded.spec == adapter.spec and loaded.spec.variant == DIT_LITE and loaded.spec.family == "flux"
    for (key, value), (key2, value2) in zip(adapter.module.state_dict().items(), loaded.module.state_dict().items()):
        assert key == key2 and torch.equal(value, value2)
    inputs = model_inputs("flux", 16)
    pivot = torch.randn(1, 16, 8, 8)
    first, second = (apply_upsampler_adapter(model, a, pivot) for a in (adapter, loaded))
    assert torch.equal(call_model(first, inputs, direct_call_options(first)),
                       call_model(second, inputs, direct_call_options(second)))


def test_gradients_reach_the_adapter_through_a_frozen_transformer():
    model = build_model("flux")
    model.model.diffusion_model.requires_grad_(False)
    adapter = trained(new_adapter(model, DIT_LITE), scale=0.1)
    patched = apply_upsampler_adapter(model, adapter, torch.randn(2, 16, 8, 8))
    # as the trainer runs it: the host's training mode (0.33's fused RoPE has no backward), and copies of what
    # autograd saves (the host's blocks add in place into it)
    with host_training(), saved_activation_copies(model.model):
        loss = call_model(patched, model_inputs("flux", 16), direct_call_options(patched)).square().mean()
        loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.module.parameters())
    assert all(p.grad is None for p in model.model.parameters())


def test_the_injection_is_found_and_checked_like_the_unets():
    from selfcascade.adapters.injection import injections_of

    model = build_model("flux")
    patched = apply_upsampler_adapter(model, new_adapter(model, DIT_LITE), torch.randn(1, 16, 8, 8))
    (injection,) = injections_of(patched)
    assert isinstance(injection, DiTInjection)
    with pytest.raises(AdapterError, match="connected but not applied in the test: its diffusion_model wrapper"):
        injection.check_applied("the test")


def ksampler(model, adapter=None) -> torch.Tensor:
    extra = {} if adapter is None else {"upsampler_adapter": adapter, "adapter_strength": 1.0}
    return SelfCascadeKSampler.execute(
        model=model, seed=3, steps=4, cfg=3.0, sampler_name="euler", scheduler="simple",
        positive=build_conditioning("flux"), negative=build_conditioning("flux", seed=1),
        latent_image={"samples": torch.zeros((1, 16, 8, 8))}, scale_by=2.0, target_width=0, target_height=0, k=0.7,
        later_k=0.0, upscale_method="bilinear", stage_steps=0, denoise=1.0, **extra).result[0]["samples"]


def test_the_ksampler_node_takes_a_dit_adapter_unchanged_and_equals_a_hand_built_tuned_stage():
    model = build_model("flux")
    plain = ksampler(model)
    assert torch.equal(ksampler(model, new_adapter(model, DIT_LITE)), plain)
    adapter = trained(new_adapter(model, DIT_LITE))
    ours = ksampler(model, adapter)
    assert not torch.equal(ours, plain)
    positive, negative = build_conditioning("flux"), build_conditioning("flux", seed=1)
    (base,) = core.KSampler().sample(model, 3, 4, 3.0, "euler", "simple", positive, negative,
                                     {"samples": torch.zeros((1, 16, 8, 8))})
    (upscaled,) = core.LatentUpscale().upscale(base, "bilinear", 128, 128, "disabled")
    stage_model = ApplyUpsamplerAdapter.execute(model, adapter, base, 1.0, 0.0, 1.0).result[0]
    sigmas = PivotReschedule.execute(model, "simple", 4, 0.7, 0).result[0]
    hand_built = SamplerCustom.execute(stage_model, True, 4, 3.0, positive, negative,
                                       KSamplerSelect.execute("euler").result[0], sigmas, upscaled).result[0]["samples"]
    assert torch.equal(ours, hand_built)


def test_the_upscale_node_takes_a_dit_adapter_unchanged():
    model, vae = build_model("flux"), build_flux_vae()
    image = torch.rand((1, 64, 64, 3), generator=torch.Generator().manual_seed(2))

    def upscale(adapter=None):
        extra = {} if adapter is None else {"upsampler_adapter": adapter, "adapter_strength": 1.0}
        return SelfCascadeUpscale.execute(image, vae, model, build_conditioning("flux"), build_conditioning("flux", seed=1),
                                          5, 4, 3.0, "euler", "simple", 2.0, 0, 0, 0.7, 0.0, "bilinear", 0, False,
                                          "never", 512, **extra).result[0]
    plain = upscale()
    assert torch.equal(upscale(new_adapter(model, DIT_LITE)), plain)
    assert not torch.equal(upscale(trained(new_adapter(model, DIT_LITE))), plain)


def test_the_load_node_describes_a_dit_adapter(tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, ADAPTER_FOLDER, ([str(tmp_path)], set()))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    save_adapter(tmp_path / "dit.safetensors", new_adapter(flow_demo(), DIT_LITE))
    text = LoadUpsamplerAdapter.execute("dit.safetensors").ui.as_dict()["text"][0]
    assert "dit-lite upsampler adapter for selfcascade-demo-flow" in text
    assert "injection: backbone at double 0, double 1, single 0" in text


def test_a_host_that_never_calls_the_block_patches_is_an_error_not_a_silent_no_op():
    model = build_model("flux")
    patched = apply_upsampler_adapter(model, trained(new_adapter(model, DIT_LITE)), torch.randn(1, 16, 8, 8))
    patched.model_options["transformer_options"]["patches_replace"]["dit"].clear()  # as a host that skips them
    with pytest.raises(AdapterError, match="not applied in this sampling run: its dit block patch was never called"):
        core.KSampler().sample(patched, 3, 2, 3.0, "euler", "simple", build_conditioning("flux"),
                               build_conditioning("flux", seed=1), {"samples": torch.zeros((1, 16, 16, 16))})


def test_a_host_whose_flux_forward_differs_refuses_the_dit_adapter_naming_its_version(monkeypatch):
    import comfy.ldm.flux.model

    model = build_model("flux")
    adapter = new_adapter(model, DIT_LITE)

    def renamed(self, x, timesteps, context, transformer_options={}, **kwargs):
        raise AssertionError("never called")
    monkeypatch.setattr(comfy.ldm.flux.model.Flux, "_forward", renamed)
    with pytest.raises(AdapterError, match=r"need Flux's forward as \(x, timestep, .*ComfyUI \d.*takes \['x', 'timesteps'"):
        apply_upsampler_adapter(model, adapter, torch.zeros(1, 16, 8, 8))
