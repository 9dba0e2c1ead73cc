"""Upsampler adapters on a ComfyUI MODEL: a DIFFUSION_MODEL wrapper and two block patches on a clone.

This module injects the UNet variants and dispatches a DiT adapter to ``dit_injection`` (Flux-style
transformers), which builds on the ``PivotInjection`` both share.

Per UNet call the wrapper runs the UNet's own input blocks and middle block on the clean pivot
(the previous stage's latent, at half the high-resolution size) with the call's timesteps,
context and ``y``, computes phi_n(pivot feature, emb) for every point and leaves them in the
call's ``transformer_options``; the block patches add them, times strength, to the
high-resolution features: to the skip an output block consumes (``skip``) or to the encoder path
after the block (``backbone``; the middle point always goes to ``h`` at output block 0).
The pivot enters model space once (``process_latent_in``), not every step as the official code did.

The pivot pass (``encoder_features``) is a copy of the first half of the host's ``UNetModel._forward``,
because the host offers no call that stops after the middle block; a test runs the host's own
forward on the pivot and pins the copy to what its blocks compute. ControlNet residuals are not added
to the pivot pass: the ControlNet computes them for the stage's latent (twice the pivot's size) from
the stage's hint, and the pivot already carries what the previous stage's control made of it. The
residuals still reach the high-resolution pass as usual.

Degrade, never die: the openaimodel helpers the pivot pass calls are looked up when an adapter is
used, so a host that renames one refuses the adapters (naming its version) and loads everything
else. An adapter whose wrapper or block patch the host never called during a sampling run is an
error, not a tuning-free image that looks tuned: every patched clone counts its calls, an
``OUTER_SAMPLE`` wrapper checks them after each run, and ``check_applied`` lets a stage loop check
them itself (for a host that calls no wrappers at all).
"""
from __future__ import annotations

import importlib
import uuid
import weakref
from typing import TYPE_CHECKING, Callable, Optional

import torch
import torch.nn.functional as F

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.utils

from ..sampling.families import detect_family
from .fileformat import AdapterError
from .modules import BACKBONE, DIT_LITE, MIDDLE, Point, UpsamplerAdapter, is_flux_transformer, unet_layout

if TYPE_CHECKING:
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

OPENAIMODEL = "comfy.ldm.modules.diffusionmodules.openaimodel"
# what the pivot pass needs of the host's UNet module; looked up per use, never at import
_HOST_HELPERS = ("UNetModel", "forward_timestep_embed", "timestep_embedding")

# UNet-level patches are resolution-specific (and include ours): the pivot pass runs without them
_BLOCK_PATCHES = ("input_block_patch", "input_block_patch_after_skip", "output_block_patch")
_host_patchers: "weakref.WeakKeyDictionary[UpsamplerAdapter, comfy.model_patcher.ModelPatcher]" = weakref.WeakKeyDictionary()


def host_version() -> str:
    """The host's version as ComfyUI states it (``comfyui_version.__version__``), for messages."""
    try:
        import comfyui_version
        return f"ComfyUI {comfyui_version.__version__}"
    except (ImportError, AttributeError):
        return "this ComfyUI (its version is not stated)"


def host_helpers() -> tuple[type, Callable, Callable]:
    """``UNetModel``, ``forward_timestep_embed`` and ``timestep_embedding`` from the host's openaimodel.

    Raises AdapterError naming the host's version and what is missing when the host lacks one.
    """
    try:
        module = importlib.import_module(OPENAIMODEL)
    except ImportError as error:
        module, missing = None, [f"the module {OPENAIMODEL} ({error})"]
    else:
        missing = [name for name in _HOST_HELPERS if not callable(getattr(module, name, None))]
    if missing:
        raise AdapterError(f"the upsampler adapters need {', '.join(missing)} from {OPENAIMODEL}, which "
                           f"{host_version()} does not have: remove the adapter (the tuning-free cascade works "
                           "without it) or use a ComfyUI version the pack's README lists as tested.")
    return tuple(getattr(module, name) for name in _HOST_HELPERS)


def check_host_supports(adapter: UpsamplerAdapter) -> None:
    """Raise AdapterError naming the host's version when it lacks what ``adapter``'s variant is injected with:
    the openaimodel helpers for a UNet variant, the Flux forward the DiT injection wraps for dit-lite (so a
    host without one still loads and runs the other)."""
    if adapter.spec.dit:
        from .dit_injection import check_host_flux  # builds on this module: imported when used

        check_host_flux()
    else:
        host_helpers()


def _describe(adapter: UpsamplerAdapter) -> str:
    return f"the {adapter.spec.variant} upsampler adapter for {adapter.spec.family}"


def check_compatible(adapter: UpsamplerAdapter, model) -> None:
    """Raise AdapterError naming the mismatch when ``adapter`` cannot be injected into ``model``
    (or into any model, on a host without the helpers its injection needs)."""
    if adapter.spec.dit:
        from .dit_injection import check_dit_compatible  # builds on this module: imported when used

        check_dit_compatible(adapter, model)
        return
    family = detect_family(model)
    if is_flux_transformer(model):
        raise AdapterError(f"{_describe(adapter)} needs a UNet model (SD1.x, SD2.x, SDXL), but this is a "
                           f"{family.name} model (a Flux-style transformer): load a {DIT_LITE} adapter made for "
                           f"{family.name}, or use the tuning-free cascade without an adapter.")
    unet_class, _, _ = host_helpers()
    unet = model.model.diffusion_model
    if not family.unet or not isinstance(unet, unet_class):
        raise AdapterError(f"{_describe(adapter)} needs a UNet model (SD1.x, SD2.x, SDXL), but this is a "
                           f"{family.name} model ({type(unet).__name__}); use the tuning-free cascade without an adapter.")
    config = model.model.model_config.unet_config
    if config.get("use_temporal_resblock") or config.get("use_temporal_attention"):
        raise AdapterError(f"{_describe(adapter)} works on image UNets; this is a video UNet: remove the adapter.")
    spec = adapter.spec
    if spec.family != family.name:
        raise AdapterError(f"{_describe(adapter)} does not fit this {family.name} model: load an adapter made "
                           f"for {family.name}.")
    layout = unet_layout(config)
    if spec.points != layout.points or spec.channels != layout.channels:
        raise AdapterError(f"{_describe(adapter)} expects channels {list(spec.channels)} at blocks {list(spec.points)}, "
                           f"this model has {list(layout.channels)} at {list(layout.points)}: it is another "
                           "architecture of the family; load an adapter made for this model.")
    if spec.emb_dim != layout.emb_dim:
        raise AdapterError(f"{_describe(adapter)} expects an embedding width of {spec.emb_dim}, this model's is "
                           f"{layout.emb_dim}: load an adapter made for this model.")


def _host_patcher(adapter: UpsamplerAdapter) -> comfy.model_patcher.ModelPatcher:
    """One ModelPatcher per adapter, so the host loads and offloads its weights with the model."""
    patcher = _host_patchers.get(adapter)
    if patcher is None:
        patcher = comfy.model_patcher.ModelPatcher(adapter.module, load_device=comfy.model_management.get_torch_device(),
                                                   offload_device=comfy.model_management.unet_offload_device())
        _host_patchers[adapter] = patcher
    return patcher


def encoder_features(unet: UNetModel, h: torch.Tensor, timesteps: torch.Tensor, context, y,
                     transformer_options: dict, points: tuple[Point, ...], extra: dict):
    """The UNet's own time embedding and its encoder and middle features of ``h`` at ``points``.

    What ``UNetModel._forward`` computes up to the middle block, without ControlNet residuals and
    with the ``transformer_options`` (and their patches) the caller gives.
    """
    _, forward_timestep_embed, timestep_embedding = host_helpers()
    options = {**transformer_options, "transformer_index": 0, "original_shape": list(h.shape)}
    patches = options.get("patches", {})
    emb = unet.time_embed(timestep_embedding(timesteps, unet.model_channels, repeat_only=False).to(h.dtype))
    for patch in patches.get("emb_patch", []):
        emb = patch(emb, unet.model_channels, options)
    if unet.num_classes is not None:
        emb = emb + unet.label_emb(y)
    wanted = {p[1] for p in points if p != MIDDLE}
    features = {}
    for index in range(max(wanted) + 1):
        options["block"] = ("input", index)
        h = forward_timestep_embed(unet.input_blocks[index], h, emb, context, options, **extra)
        if index in wanted:
            features[("input", index)] = h
    if MIDDLE in points:
        options["block"] = MIDDLE
        if unet.middle_block is not None:
            h = forward_timestep_embed(unet.middle_block, h, emb, context, options, **extra)
        features[MIDDLE] = h
    return emb, [features[p] for p in points]


def _fit(feature: torch.Tensor, target: torch.Tensor, point: Point) -> torch.Tensor:
    if feature.shape[1] != target.shape[1]:
        raise AdapterError(f"upsampler adapter feature for block {point} has {feature.shape[1]} channels, the model's "
                           f"has {target.shape[1]}: the adapter does not fit this model.")
    if feature.shape[-2:] != target.shape[-2:]:  # odd sizes: x2 of a halved level overshoots by one cell
        feature = F.interpolate(feature, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return feature


class PivotInjection:
    """One adapter with one pivot on one model clone; shared (not copied) by later clones.

    What the UNet and the DiT injections share: the pivot at the call's size, the sigma window, the
    host's load hooks and the per-run count of calls that ``check_applied`` reads.
    """

    added_by = "its output block patch"  # the patch that adds the features, for check_applied's message

    def __init__(self, adapter: UpsamplerAdapter, pivot: torch.Tensor, strength: float,
                 sigma_start: float, sigma_end: float):
        self.adapter = adapter
        self.pivot = pivot  # model space, the previous stage's size
        self.strength = strength
        self.sigma_start, self.sigma_end = sigma_start, sigma_end
        self.key = f"selfcascade_upsampler_{uuid.uuid4().hex[:12]}"
        self.points = adapter.spec.points
        self._resized: Optional[torch.Tensor] = None
        # per sampling run: wrapper calls, those that computed features, and calls that added them
        self.wrapper_calls = self.active_calls = self.applied_calls = 0

    def __deepcopy__(self, memo):
        return self

    def to(self, device_or_dtype) -> "PivotInjection":
        """The host's load hook: the pivot follows the device; dtypes need nothing (modules cast at call time)."""
        if isinstance(device_or_dtype, torch.device):
            self.pivot = self.pivot.to(device_or_dtype)
            self._resized = None
        return self

    def models(self) -> list:
        return [_host_patcher(self.adapter)]

    def _active(self, transformer_options: dict) -> bool:
        sigmas = transformer_options.get("sigmas")
        if self.strength == 0.0:
            return False
        return sigmas is None or self.sigma_end <= float(sigmas.max()) <= self.sigma_start

    def _pivot_for(self, x: torch.Tensor) -> torch.Tensor:
        """The pivot at half of x's size (rounded up), x's device and dtype, one per batch entry of x."""
        size = ((x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2)
        resized = self._resized
        if resized is None or resized.shape[-2:] != size or resized.device != x.device or resized.dtype != x.dtype:
            resized = self.pivot.to(device=x.device, dtype=x.dtype)
            if resized.shape[-2:] != size:
                resized = F.interpolate(resized, size=size, mode="bilinear", align_corners=False)
            self._resized = resized
        return comfy.utils.repeat_to_batch_size(resized, x.shape[0])

    def reset_counts(self) -> None:
        self.wrapper_calls = self.active_calls = self.applied_calls = 0

    def check_applied(self, where: str) -> None:
        """Raise AdapterError when the host did not run this adapter in the sampling run just done.

        Not called at all, or features computed but never added: both would give a tuning-free
        image the user takes for a tuned one. Inactive by choice (strength 0, a sigma window the
        schedule misses) is not an error.
        """
        if self.wrapper_calls == 0:
            hook = f"its {comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL} wrapper was never called"
        elif self.active_calls and not self.applied_calls:
            hook = f"{self.added_by} was never called"
        else:
            return
        raise AdapterError(f"{_describe(self.adapter)} was connected but not applied in {where}: {hook} by "
                           f"{host_version()}, so the result would be tuning-free. Remove the adapter to sample "
                           "tuning-free, or use a ComfyUI version the pack's README lists as tested.")

    def outer_sample_wrapper(self, executor, *args, **kwargs):
        """Counts from zero for each sampling run and checks them when the run returns."""
        self.reset_counts()
        samples = executor(*args, **kwargs)
        self.check_applied("this sampling run")
        return samples


class UpsamplerInjection(PivotInjection):
    """The UNet injection: the pivot pass through the encoder and middle, added by block patches."""

    def __init__(self, adapter: UpsamplerAdapter, pivot: torch.Tensor, strength: float,
                 sigma_start: float, sigma_end: float, input_blocks: int):
        super().__init__(adapter, pivot, strength, sigma_start, sigma_end)
        self.backbone = adapter.spec.injection == BACKBONE
        # skip mode: the skip of input block i is consumed by output block (input_blocks - 1 - i)
        self.skip_of_output = {input_blocks - 1 - p[1]: p for p in self.points if p != MIDDLE}

    def _pivot_features(self, unet: UNetModel, x, timesteps, context, y, transformer_options, kwargs):
        """The UNet's own embedding, and its encoder + middle features of the pivot at every point."""
        patches = {k: v for k, v in transformer_options.get("patches", {}).items() if k not in _BLOCK_PATCHES}
        extra = {name: kwargs.get(name) for name in ("time_context", "num_video_frames", "image_only_indicator")}
        return encoder_features(unet, self._pivot_for(x), timesteps, context, y,
                                {**transformer_options, "patches": patches}, self.points, extra)

    def diffusion_model_wrapper(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        self.wrapper_calls += 1
        if not self._active(transformer_options):
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
        self.active_calls += 1
        with torch.no_grad():  # the UNet is frozen: only phi needs gradients when training
            emb, features = self._pivot_features(executor.class_obj, x, timesteps, context, y, transformer_options, kwargs)
        upsampled = self.adapter.module(features, emb)
        transformer_options[self.key] = {p: f * self.strength for p, f in zip(self.points, upsampled)}
        try:
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
        finally:
            transformer_options.pop(self.key, None)

    def add_to_backbone(self, h: torch.Tensor, transformer_options: dict) -> torch.Tensor:
        """input_block_patch_after_skip: the encoder path after the block, not the stored skip."""
        features = transformer_options.get(self.key)
        block = transformer_options["block"]
        if features is None or block not in features:
            return h
        return h + _fit(features[block], h, block)

    def add_to_output_block(self, h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict):
        """output_block_patch: the middle feature into h at output block 0; skips into hsp (skip mode)."""
        features = transformer_options.get(self.key)
        if features is None:
            return h, hsp
        self.applied_calls += 1
        index = transformer_options["block"][1]
        if index == 0 and MIDDLE in features:
            h = h + _fit(features[MIDDLE], h, MIDDLE)
        point = self.skip_of_output.get(index)
        if not self.backbone and point is not None:
            hsp = hsp + _fit(features[point], hsp, point)
        return h, hsp


class _HostPatch:
    """An injection method as a host patch: clone() shares it, and the host moves and loads it."""

    def __init__(self, method):
        self.method = method

    def __call__(self, *args):
        return self.method(*args)

    def __deepcopy__(self, memo):
        return self

    def to(self, device_or_dtype) -> "_HostPatch":
        self.method.__self__.to(device_or_dtype)
        return self

    def models(self) -> list:
        return self.method.__self__.models()


def checked_inputs(model, pivot_latent, start_percent: float, end_percent: float) -> tuple[torch.Tensor, float, float]:
    """The pivot in model space and the sigma window, once both are checked (before any clone is made)."""
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise AdapterError(f"start_percent {start_percent} and end_percent {end_percent} must satisfy "
                           "0 <= start <= end <= 1.")
    pivot = model.get_model_object("latent_format").process_in(_checked_pivot(model, pivot_latent))
    sampling = model.get_model_object("model_sampling")
    return pivot, sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent)


def _checked_pivot(model, pivot_latent) -> torch.Tensor:
    if not isinstance(pivot_latent, torch.Tensor) or pivot_latent.ndim != 4:
        shape = tuple(pivot_latent.shape) if isinstance(pivot_latent, torch.Tensor) else type(pivot_latent).__name__
        raise AdapterError(f"the pivot must be an image latent (batch, channels, height, width), got {shape}: "
                           "connect the previous stage's LATENT output.")
    channels = model.get_model_object("latent_format").latent_channels
    if pivot_latent.shape[1] != channels:
        raise AdapterError(f"the pivot latent has {pivot_latent.shape[1]} channels, this model's latents have {channels}: "
                           "connect a latent sampled with this model.")
    if not torch.isfinite(pivot_latent).all():
        raise AdapterError("the pivot latent contains NaN or Inf values: regenerate the previous stage.")
    return pivot_latent


def apply_upsampler_adapter(model, adapter: UpsamplerAdapter, pivot_latent: torch.Tensor, strength: float = 1.0,
                            start_percent: float = 0.0, end_percent: float = 1.0):
    """A clone of ``model`` whose UNet (or Flux-style transformer, for a DiT adapter) adds the adapter's
    upsampled pivot features (``model`` is untouched).

    ``pivot_latent`` is the previous stage's clean latent as samplers return it (VAE space).
    The adapter is active while sigma lies between ``start_percent`` and ``end_percent`` of
    the schedule (the official code stops at t = 100, end_percent 0.9).
    """
    if adapter.spec.dit:
        from .dit_injection import apply_dit_adapter  # builds on this module: imported when used

        return apply_dit_adapter(model, adapter, pivot_latent, strength, start_percent, end_percent)
    check_compatible(adapter, model)
    pivot, sigma_start, sigma_end = checked_inputs(model, pivot_latent, start_percent, end_percent)
    patched = model.clone()
    injection = UpsamplerInjection(adapter, pivot, float(strength), sigma_start, sigma_end,
                                   len(patched.model.diffusion_model.input_blocks))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, injection.key,
                                 injection.diffusion_model_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, injection.key,
                                 injection.outer_sample_wrapper)
    if injection.backbone:
        patched.set_model_input_block_patch_after_skip(_HostPatch(injection.add_to_backbone))
    patched.set_model_output_block_patch(_HostPatch(injection.add_to_output_block))
    return patched


def injections_of(model) -> list[PivotInjection]:
    """The adapter injections ``apply_upsampler_adapter`` put on ``model`` (a clone may carry several)."""
    wrappers = model.wrappers.get(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, {})
    return [w.__self__ for fns in wrappers.values() for w in fns
            if isinstance(getattr(w, "__self__", None), PivotInjection)]


def check_applied(model, where: str) -> None:
    """After sampling ``model``: raise AdapterError if one of its adapters was not applied in that run.

    For a stage loop that samples the clone itself, so a host that calls no wrappers at all (not
    even ``OUTER_SAMPLE``) is caught too.
    """
    for injection in injections_of(model):
        injection.check_applied(where)


def direct_call_options(model) -> dict:
    """``transformer_options`` for calling ``model.model.apply_model(...)`` directly (training).

    The model's patches plus its wrappers and callbacks, merged as
    ``comfy.sampler_helpers.prepare_model_patcher`` does before sampling; ``model`` is untouched.
    """
    options = comfy.patcher_extension.copy_nested_dicts(model.model_options["transformer_options"])
    comfy.patcher_extension.merge_nested_dicts(options.setdefault("wrappers", {}), model.wrappers, copy_dict1=False)
    comfy.patcher_extension.merge_nested_dicts(options.setdefault("callbacks", {}), model.callbacks, copy_dict1=False)
    return options
