"""DiT upsampler adapters on a ComfyUI MODEL with a Flux-style transformer: a DIFFUSION_MODEL wrapper and
the host's ``dit`` block replace patches on a clone.

Per model call the wrapper runs the host's own Flux forward (the wrapper executor's original, so no
other DIFFUSION_MODEL wrapper sees it) on the clean pivot at half the call's size, with the call's
timestep, context, ``y``, guidance and reference latents: the pivot's own token grid and positions
(``img_ids`` from the pivot's size), the text tokens and their ``txt_ids`` as the call has them.
Capture patches at the adapter's points record the pivot's image tokens after each of those blocks,
and the last one ends the pass, so only the first half of the blocks runs on the pivot. The
adapter maps them to the call's token grid; replace patches at the same blocks add them, times
strength, to the call's image tokens after the block (the image part of the joint sequence in the
single-stream blocks); text tokens and reference-latent tokens are left alone.

The pivot pass runs without what is made for the call's own tokens: other ``dit`` block patches,
``post_input`` patches, RoPE scaling (``rope_options`` scale_x / scale_y; shifts stay, LongCat's
are part of the model), ControlNet residuals and an attention mask (both sized for the call's
tokens). A ``dit`` patch already on a block the adapter uses is kept: the adapter's patch calls it
and adds to its result. Counting and the applied check are the UNet injection's (``PivotInjection``).
"""
from __future__ import annotations

import importlib
import inspect
import math
from typing import Callable, Optional

import torch

import comfy.patcher_extension

from ..sampling.families import detect_family
from .fileformat import AdapterError
from .injection import PivotInjection, _describe, checked_inputs, host_version
from .modules import Point, UpsamplerAdapter, dit_layout, is_flux_transformer

FLUX_MODULE = "comfy.ldm.flux.model"
# how the host's Flux hands its forward to DIFFUSION_MODEL wrappers (ComfyUI 0.3.75 and 0.33 alike)
FORWARD_PARAMETERS = ("x", "timestep", "context", "y", "guidance", "ref_latents", "control", "transformer_options")
RESOLUTION_SCALES = ("scale_x", "scale_y")  # rope_options entries that stretch positions to another size


def check_host_flux() -> None:
    """Raise AdapterError naming the host's version when its Flux does not call wrappers as this injection expects."""
    try:
        flux_class = importlib.import_module(FLUX_MODULE).Flux
        parameters = tuple(inspect.signature(flux_class._forward).parameters)[1:len(FORWARD_PARAMETERS) + 1]
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        parameters, problem = (), f"{FLUX_MODULE}.Flux._forward is missing ({error})"
    else:
        problem = f"{FLUX_MODULE}.Flux._forward takes {list(parameters)}"
    if parameters != FORWARD_PARAMETERS:
        raise AdapterError(f"the DiT upsampler adapters need Flux's forward as ({', '.join(FORWARD_PARAMETERS)}), but in "
                           f"{host_version()} {problem}: remove the adapter (the tuning-free cascade works without it) "
                           "or use a ComfyUI version the pack's README lists as tested.")


def check_dit_compatible(adapter: UpsamplerAdapter, model) -> None:
    """Raise AdapterError naming the mismatch (both families, and the fix) when ``adapter`` cannot be injected."""
    family = detect_family(model)
    diffusion_model = model.model.diffusion_model
    if not is_flux_transformer(model):
        kind = "a UNet" if family.unet else type(diffusion_model).__name__
        fix = f"load a lite adapter made for {family.name}" if family.unet else "no DiT adapter fits it yet"
        raise AdapterError(f"{_describe(adapter)} needs a Flux-style transformer (Flux.1, Flux.2, the flow demo model), "
                           f"but this is a {family.name} model ({kind}): {fix}, or use the tuning-free cascade "
                           "without an adapter.")
    check_host_flux()
    spec = adapter.spec
    if spec.family != family.name:
        raise AdapterError(f"{_describe(adapter)} does not fit this {family.name} model: load an adapter made "
                           f"for {family.name}.")
    latent_channels = model.get_model_object("latent_format").latent_channels
    if diffusion_model.params.in_channels != latent_channels:
        raise AdapterError(f"{_describe(adapter)} runs the pivot's {latent_channels}-channel latent through the model, "
                           f"which takes {diffusion_model.params.in_channels} channels (an inpainting or fill model); "
                           "use the base model, or the tuning-free cascade without an adapter.")
    layout = dit_layout(model.model.model_config.unet_config)
    if spec.points != layout.points or spec.channels != layout.channels:
        raise AdapterError(f"{_describe(adapter)} expects width {list(spec.channels)} at blocks {list(spec.points)}, "
                           f"this model has {list(layout.channels)} at {list(layout.points)}: it is another "
                           "architecture of the family; load an adapter made for this model.")


def token_grid(latent: torch.Tensor, patch_size: int) -> tuple[int, int]:
    """Rows and columns of image tokens Flux makes of ``latent`` (padded to whole patches)."""
    return math.ceil(latent.shape[-2] / patch_size), math.ceil(latent.shape[-1] / patch_size)


def _image_start(point: Point, transformer_options: dict, text_tokens: int) -> int:
    """Where the image tokens start in a block's ``img``: first in a double-stream block; after the text in a
    single-stream block (the host states it as ``img_slice`` since 0.33; the context's length before)."""
    if point[0] == "double_block":
        return 0
    return transformer_options.get("img_slice", (text_tokens,))[0]


class _PivotPassDone(Exception):
    """Raised by the last point's capture: the rest of the pivot pass is not needed."""


class _Capture:
    """A ``dit`` replace patch of the pivot pass: runs the block and keeps its image tokens."""

    def __init__(self, point: Point, image_tokens: int, text_tokens: int, features: dict, last: bool):
        self.point, self.image_tokens, self.text_tokens = point, image_tokens, text_tokens
        self.features, self.last = features, last

    def __call__(self, args: dict, extra: dict) -> dict:
        out = extra["original_block"](args)
        start = _image_start(self.point, args["transformer_options"], self.text_tokens)
        # a copy: the host's next single-stream block adds to its input in place (x += ...)
        self.features[self.point] = out["img"][:, start:start + self.image_tokens].clone()
        if self.last:
            raise _PivotPassDone
        return out


def pivot_options(transformer_options: dict, captures: dict) -> dict:
    """The call's options for the pivot pass: the captures as the only ``dit`` patches, no ``post_input``
    patches, no RoPE scaling (see the module docstring); the call's own dict is left as it was."""
    options = dict(transformer_options)
    options["patches"] = {k: v for k, v in options.get("patches", {}).items() if k != "post_input"}
    options["patches_replace"] = {**options.get("patches_replace", {}), "dit": captures}
    rope = {k: v for k, v in (options.pop("rope_options", None) or {}).items() if k not in RESOLUTION_SCALES}
    if rope:
        options["rope_options"] = rope
    return options


class DiTInjection(PivotInjection):
    """The DiT injection: the pivot pass through the first blocks, added by ``dit`` replace patches."""

    added_by = "its dit block patch"

    def __init__(self, adapter: UpsamplerAdapter, pivot: torch.Tensor, strength: float,
                 sigma_start: float, sigma_end: float, patch_size: int):
        super().__init__(adapter, pivot, strength, sigma_start, sigma_end)
        self.patch_size = patch_size

    def pivot_features(self, forward: Callable, x, timestep, context, y, guidance, ref_latents, transformer_options,
                       kwargs) -> tuple[list[torch.Tensor], tuple[int, int]]:
        """The pivot's image tokens after every point's block (host forward ``forward``), and its token grid."""
        pivot = self._pivot_for(x)
        grid = token_grid(pivot, self.patch_size)
        features: dict = {}
        captures = {point: _Capture(point, grid[0] * grid[1], context.shape[1], features, point == self.points[-1])
                    for point in self.points}
        extra = {k: v for k, v in kwargs.items() if k != "attention_mask"}
        try:
            forward(pivot, timestep, context, y, guidance, ref_latents, None,
                    pivot_options(transformer_options, captures), **extra)
        except _PivotPassDone:
            pass
        missing = [point for point in self.points if point not in features]
        if missing:
            raise AdapterError(f"{_describe(self.adapter)}: {host_version()} did not call the dit block patches at "
                               f"{missing} in the pivot pass; use a ComfyUI version the pack's README lists as tested.")
        return [features[point] for point in self.points], grid

    def diffusion_model_wrapper(self, executor, x, timestep, context, y, guidance, ref_latents, control,
                                transformer_options, **kwargs):
        self.wrapper_calls += 1
        if not self._active(transformer_options):
            return executor(x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kwargs)
        self.active_calls += 1
        with torch.no_grad():  # the transformer is frozen: only phi needs gradients when training
            features, grid = self.pivot_features(executor.original, x, timestep, context, y, guidance, ref_latents,
                                                 transformer_options, kwargs)
        target = token_grid(x, self.patch_size)
        upsampled = self.adapter.module(features, timestep, grid, target)
        transformer_options[self.key] = _Additions({p: f * self.strength for p, f in zip(self.points, upsampled)},
                                                   target[0] * target[1], context.shape[1])
        try:
            return executor(x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kwargs)
        finally:
            transformer_options.pop(self.key, None)


class _Additions:
    """What one call adds: the upsampled features per point, and where the image tokens are."""

    def __init__(self, features: dict, image_tokens: int, text_tokens: int):
        self.features, self.image_tokens, self.text_tokens = features, image_tokens, text_tokens


class _TokenAddition:
    """The ``dit`` replace patch of one point: the block (or the patch that was there), then the feature added
    to its image tokens. clone() shares it; the host moves and loads it with the model."""

    def __init__(self, injection: DiTInjection, point: Point, previous: Optional[Callable]):
        self.injection, self.point, self.previous = injection, point, previous

    def __call__(self, args: dict, extra: dict) -> dict:
        out = self.previous(args, extra) if self.previous is not None else extra["original_block"](args)
        additions = args["transformer_options"].get(self.injection.key)
        if additions is None:
            return out
        self.injection.applied_calls += 1
        img = out["img"]
        start = _image_start(self.point, args["transformer_options"], additions.text_tokens)
        end = start + additions.image_tokens
        feature = additions.features[self.point]
        if img.shape[1] < end or feature.shape[1:] != (additions.image_tokens, img.shape[2]):
            raise AdapterError(f"{_describe(self.injection.adapter)}: block {self.point} has {img.shape[1]} tokens of "
                               f"width {img.shape[2]}, the adapter's feature {tuple(feature.shape[1:])} from token "
                               f"{start}: the adapter does not fit this model.")
        added = img[:, start:end] + feature.to(device=img.device, dtype=img.dtype)
        return {**out, "img": torch.cat([img[:, :start], added, img[:, end:]], dim=1)}

    def __deepcopy__(self, memo):
        return self

    def to(self, device_or_dtype) -> "_TokenAddition":
        self.injection.to(device_or_dtype)
        if hasattr(self.previous, "to"):
            self.previous = self.previous.to(device_or_dtype)
        return self

    def models(self) -> list:
        return self.injection.models() + (self.previous.models() if hasattr(self.previous, "models") else [])


def apply_dit_adapter(model, adapter: UpsamplerAdapter, pivot_latent: torch.Tensor, strength: float = 1.0,
                      start_percent: float = 0.0, end_percent: float = 1.0):
    """``apply_upsampler_adapter`` for a DiT adapter: a clone of ``model`` (untouched) that adds the upsampled
    pivot tokens after the adapter's blocks."""
    check_dit_compatible(adapter, model)
    pivot, sigma_start, sigma_end = checked_inputs(model, pivot_latent, start_percent, end_percent)
    patched = model.clone()
    injection = DiTInjection(adapter, pivot, float(strength), sigma_start, sigma_end,
                             patched.model.diffusion_model.patch_size)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, injection.key,
                                 injection.diffusion_model_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, injection.key,
                                 injection.outer_sample_wrapper)
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("dit", {})
    for point in injection.points:
        patched.set_model_patch_replace(_TokenAddition(injection, point, existing.get(point)), "dit", *point)
    return patched
