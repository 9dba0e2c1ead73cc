"""Tuning-free cascade nodes: Self-Cascade KSampler, base latent, Pivot Reschedule, Pivot Upscale."""
from __future__ import annotations

import torch

import comfy.model_management
import comfy.samplers

from ..adapters.stage_patch import adapter_stage_patch
from ..sampling import limits
from ..sampling.cascade import CascadeRun
from ..sampling.families import detect_family, native_size_for_aspect, pivot_family
from ..sampling.latents import prepare_base_latent
from ..sampling.pivot import LATENT_METHODS, upscale_pivot
from ..sampling.plan import plan_from_settings
from ..sampling.schedule import pivot_sigmas
from .api import CATEGORY, io, ui
from .cascade_inputs import (K_TOOLTIP, Wording, adapter_inputs, cascade_settings, k_axis_input, sampler_inputs,
                             stage_inputs)

WORDING = Wording(
    seed="Noise seed of the base stage; stage r uses seed + r.",
    steps="Steps of the base stage; each later stage runs the part of this schedule below K.",
    scheduler="Scheduler for every stage; high-resolution stages use its cut at K.",
    scale_by="Target size as a per-side factor of the base; used when target width/height are 0.",
    target_width="Final width in pixels (0: use scale_by). Rounded to the model's size multiple.",
    k=K_TOOLTIP,
    later_k=("K of the second and later high-resolution stages; 0 uses k for every stage. A lower K here "
             "(e.g. 0.5 after 0.7) keeps the composition the first stage settled and runs fewer steps."),
    upscale_method="How the pivot is upsampled between stages (paper: bilinear; official code: bicubic).",
    stage_steps="Steps per high-resolution stage; 0 derives them from K and steps (35 of 50 at K = 0.7).",
    adapter=("Optional learned upsampler adapter (Load Upsampler Adapter), applied in every high-resolution stage "
             "with that stage's pivot."),
)


def plan_for(model, latent: dict, scale_by: float, target_width: int, target_height: int, vae=None):
    """The stage plan for a latent and the user's target (explicit size wins over scale)."""
    family = detect_family(model, vae)
    base = family.pixels_of(prepare_base_latent(model, latent)["samples"])  # the size the base stage samples
    return family, plan_from_settings(base.width, base.height, scale_by, target_width, target_height,
                                      family.size_multiple, limits.MAX_SIDE)


class SelfCascadeKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeKSampler",
            display_name="Self-Cascade KSampler",
            category=CATEGORY,
            description=("Samples at the base size like KSampler, then climbs to the target in stages of at most 2x "
                         "per side: each stage upsamples the clean result (the pivot), re-noises it to t = K and "
                         "denoises with the same model, prompt and CFG (Self-Cascade, ECCV 2024)."),
            inputs=[
                io.Model.Input("model", tooltip="The model used for every stage."),
                *sampler_inputs(WORDING),
                io.Conditioning.Input("positive", tooltip="What to draw."),
                io.Conditioning.Input("negative", tooltip="What to avoid."),
                io.Latent.Input("latent_image", tooltip=("The base-stage latent: its size is the base size (use Self-Cascade "
                                                         "Base Latent for the model's native size); a non-empty latent "
                                                         "works like img2img with denoise.")),
                *stage_inputs(WORDING),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Denoise of the base stage, as in KSampler (below 1 for img2img)."),
                io.Vae.Input("vae", optional=True,
                             tooltip="Optional: upsample the pivot in pixel space (decode, resize, encode) for models "
                                     "whose latents resize badly (Flux, SD3); its pixels per latent cell then size "
                                     "the stages."),
                *adapter_inputs(WORDING),
                k_axis_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The latent at the target size.")],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, scale_by,
                target_width, target_height, k, later_k, upscale_method, stage_steps, denoise, vae=None,
                upsampler_adapter=None, adapter_strength=1.0, k_axis=limits.K_AXIS.default) -> io.NodeOutput:
        settings = cascade_settings(seed, steps, cfg, sampler_name, scheduler, scale_by, target_width, target_height, k,
                                    later_k, upscale_method, stage_steps, denoise, k_axis)
        family, plan = plan_for(model, latent_image, scale_by, target_width, target_height, vae)
        stage_patch = adapter_stage_patch(model, upsampler_adapter, adapter_strength) if plan.cascade_stages else None
        run = CascadeRun(model, positive, negative, plan, family, settings, vae, stage_patch)
        latent, reports = run.run(latent_image)
        report = "\n".join([*(r.line() for r in reports), *plan.notes, *run.notes, *filter(None, [family.assumption()])])
        return io.NodeOutput(latent, ui=ui.PreviewText(report))


class SelfCascadeBaseLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeBaseLatent",
            display_name="Self-Cascade Base Latent",
            category=CATEGORY,
            description=("An empty latent at the model's native area (SD1.x 512², SD2 768-v 768², SDXL/SD3/Flux 1024²) "
                         "with the target's aspect ratio, so you only set the final size."),
            inputs=[
                io.Model.Input("model", tooltip="The model whose native size is used (detected from the model)."),
                io.Int.Input("target_width", default=2048, min=64, max=limits.MAX_SIDE, step=8,
                             tooltip="Final width in pixels."),
                io.Int.Input("target_height", default=2048, min=64, max=limits.MAX_SIDE, step=8,
                             tooltip="Final height in pixels."),
                io.Int.Input("batch_size", default=1, min=1, max=4096, tooltip="Images per batch."),
                io.Int.Input("length", default=1, min=1, max=4096, tooltip="Frames, for video models only."),
            ],
            outputs=[io.Latent.Output(tooltip="Empty base latent."),
                     io.Int.Output(display_name="target_width", tooltip="The target width, to wire into the sampler."),
                     io.Int.Output(display_name="target_height", tooltip="The target height, to wire into the sampler.")],
        )

    @classmethod
    def execute(cls, model, target_width, target_height, batch_size, length) -> io.NodeOutput:
        family = detect_family(model)
        width, height = native_size_for_aspect(family, target_width, target_height)
        latent_format = model.get_model_object("latent_format")
        spatial = (height // family.latent_factor, width // family.latent_factor)
        if getattr(latent_format, "latent_dimensions", 2) == 3:
            shape = (batch_size, latent_format.latent_channels, family.latent_frames(length), *spatial)
        else:
            shape = (batch_size, latent_format.latent_channels, *spatial)
        samples = torch.zeros(shape, device=comfy.model_management.intermediate_device())
        return io.NodeOutput({"samples": samples}, target_width, target_height)


class PivotReschedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadePivotReschedule",
            display_name="Pivot Reschedule",
            category=CATEGORY,
            description=("Sigmas for one high-resolution stage: the model's schedule cut where t <= K. Feed SamplerCustom "
                         "with the upscaled pivot and add_noise on: the sampler re-noises the pivot to t = K."),
            inputs=[
                io.Model.Input("model", tooltip="The model whose schedule is cut."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="normal",
                               tooltip="The scheduler whose schedule is cut."),
                io.Int.Input("steps", **limits.STEPS.schema(), tooltip="Steps of the full (uncut) schedule."),
                io.Float.Input("k", **limits.K.schema(), step=0.01, tooltip=K_TOOLTIP),
                io.Int.Input("stage_steps", **limits.STAGE_STEPS.schema(),
                             tooltip="Exact steps below K; 0 keeps the part of the steps-step schedule below K."),
                k_axis_input(),
            ],
            outputs=[io.Sigmas.Output(tooltip="Sigmas from t = K down to 0.")],
        )

    @classmethod
    def execute(cls, model, scheduler, steps, k, stage_steps, k_axis=limits.K_AXIS.default) -> io.NodeOutput:
        limits.check_values((limits.STEPS, limits.K, limits.STAGE_STEPS), dict(steps=steps, k=k, stage_steps=stage_steps))
        limits.K_AXIS.check(k_axis)
        sigmas = pivot_sigmas(model.get_model_object("model_sampling"), scheduler, steps, k, stage_steps,
                              axis=k_axis)
        return io.NodeOutput(sigmas)


class PivotUpscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadePivotUpscale",
            display_name="Pivot Upscale",
            category=CATEGORY,
            description=("Upsamples a clean latent (the pivot) for the next cascade stage, in latent space or, with a "
                         "VAE, in pixel space. Spatial only: video frame counts and batches are kept."),
            inputs=[
                io.Latent.Input("samples", tooltip="The clean latent of the previous stage (its noise mask is kept)."),
                io.Combo.Input("upscale_method", options=list(LATENT_METHODS), default="bilinear",
                               tooltip="Interpolation (paper: bilinear; official code: bicubic)."),
                io.Float.Input("scale_by", default=2.0, min=0.01, max=8.0, step=0.01,
                               tooltip="Per-side factor; used when width/height are 0."),
                io.Int.Input("width", default=0, min=0, max=limits.MAX_SIDE, step=8,
                             tooltip="Target width in pixels (0: use scale_by)."),
                io.Int.Input("height", default=0, min=0, max=limits.MAX_SIDE, step=8,
                             tooltip="Target height in pixels (0: use scale_by)."),
                io.Vae.Input("vae", optional=True, tooltip="Optional: resize in pixel space (decode, resize, encode)."),
                io.Model.Input("model", optional=True,
                               tooltip="Optional: the model of the next stage. Its family sizes the latent (pixels per "
                                       "cell, size multiple) as in the Self-Cascade KSampler; without it (and "
                                       "without a VAE) 8 px per cell is assumed."),
            ],
            outputs=[io.Latent.Output(tooltip="The upsampled pivot, noise mask kept.")],
        )

    @classmethod
    def execute(cls, samples, upscale_method, scale_by, width, height, vae=None, model=None) -> io.NodeOutput:
        family = pivot_family(model, vae)
        if width > 0 and height > 0:
            size = family.fit(width, height)
        else:
            current = family.pixels_of(samples["samples"])
            size = family.fit(current.width * scale_by, current.height * scale_by)
        out = samples.copy()  # the noise mask stays: the host's samplers resize it to each latent they sample
        out["samples"] = upscale_pivot(samples["samples"], size, family.latent_factor, upscale_method, vae)
        text = "\n".join(filter(None, [f"{size} px", family.assumption()]))
        return io.NodeOutput(out, ui=ui.PreviewText(text))


NODES = [SelfCascadeKSampler, SelfCascadeBaseLatent, PivotReschedule, PivotUpscale]
