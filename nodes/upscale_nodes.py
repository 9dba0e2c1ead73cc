"""Self-Cascade Upscale: an image you already have -> the same cascade as the KSampler's -> a larger image."""
from __future__ import annotations

import comfy.samplers

from ..sampling import limits
from ..sampling.cascade import CascadeSettings
from ..sampling.families import detect_family
from ..sampling.pivot import LATENT_METHODS
from ..sampling.upscale import AUTO_TILE_PIXELS, TILE_MODES, run_upscale
from .api import CATEGORY, UpsamplerAdapter, io, ui
from .cascade_nodes import adapter_stage_patch

UPSCALE_K = 0.5  # lower than the KSampler's 0.7: here the first pivot is the user's own image (README: measured)
FIRST_K_TOOLTIP = ("K of the first stage: how much of your image may change, as a fraction of the model's time range "
                   "(the encoded image is re-noised to t = K). Lower keeps the image (composition, object count, "
                   "colours) and adds less detail; higher repaints more and may move or repeat objects.")
LATER_K_TOOLTIP = ("K of the second and later stages; 0 uses k for every stage. They start from a pivot the model "
                   "already drew at twice the input's size.")
TILE_TOOLTIP = (f"Tiled VAE encode and decode (the host's VAE Encode/Decode (Tiled)). auto: tiled when a frame has "
                f"more than {AUTO_TILE_PIXELS / 1e6:.1f} megapixels (2048x2048) or ComfyUI's own memory estimate for "
                "the pass is more than the free memory of the VAE's device; always / never force it. The report "
                "says which.")


class SelfCascadeUpscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeUpscale",
            display_name="Self-Cascade Upscale",
            category=CATEGORY,
            description=("Upscales an image you already have (a generation, a photo, video frames) with Self-Cascade: "
                         "the image is encoded once and is the first pivot; each stage (at most 2x per side) upsamples "
                         "the clean result, re-noises it to t = K and denoises with your model and prompt; the result "
                         "is decoded. The same stages as the Self-Cascade KSampler after its base."),
            inputs=[
                io.Image.Input("image", tooltip=("The image, an image batch or video frames (each frame is upscaled; "
                                                 "video models get them as one clip). Alpha is dropped.")),
                io.Vae.Input("vae", tooltip="The model's own VAE: encodes the image and decodes the result."),
                io.Model.Input("model", tooltip="The model used for every stage."),
                io.Conditioning.Input("positive", tooltip="What the image shows (a short description helps)."),
                io.Conditioning.Input("negative", tooltip="What to avoid."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip=("Noise seed: stage r uses seed + r, as stage r of the Self-Cascade KSampler "
                                      "(and noise_seed of a hand-built stage r) does.")),
                io.Int.Input("steps", **limits.STEPS.schema(),
                             tooltip="Steps of the full schedule; each stage runs the part of it below its K."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale, the same in every stage."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, tooltip="Sampler for every stage."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="normal",
                               tooltip="Scheduler for every stage; each stage uses its cut at K."),
                io.Float.Input("scale_by", **limits.SCALE_BY.schema(), step=0.05,
                               tooltip="Target size as a per-side factor of the image; used when target width/height are 0."),
                io.Int.Input("target_width", **limits.TARGET_WIDTH.schema(), step=8,
                             tooltip=("Final width in pixels (0: use scale_by). Rounded to the model's size multiple. "
                                      "A target not larger than the image runs one pass at the target size.")),
                io.Int.Input("target_height", **limits.TARGET_HEIGHT.schema(), step=8,
                             tooltip="Final height in pixels (0: use scale_by). Rounded to the model's size multiple."),
                io.Float.Input("k", default=UPSCALE_K, min=limits.K.low, max=limits.K.high, step=0.01,
                               tooltip=FIRST_K_TOOLTIP),
                io.Float.Input("later_k", **limits.LATER_K.schema(), step=0.01, tooltip=LATER_K_TOOLTIP),
                io.Combo.Input("upscale_method", options=list(LATENT_METHODS), default="bilinear",
                               tooltip="How each pivot is upsampled (paper: bilinear; official code: bicubic)."),
                io.Int.Input("stage_steps", **limits.STAGE_STEPS.schema(),
                             tooltip="Steps per stage; 0 derives them from K and steps (15 of 30 at K = 0.5)."),
                io.Boolean.Input("pixel_pivot", default=False,
                                 tooltip=("Upsample each pivot in pixel space (decode, resize, encode) instead of in "
                                          "latent space: for models whose latents resize badly (Flux, SD3).")),
                io.Combo.Input("tile", options=list(TILE_MODES), default="auto", tooltip=TILE_TOOLTIP),
                io.Int.Input("tile_size", default=512, min=64, max=4096, step=64,
                             tooltip="Tile side in pixels when tiled (the host's default 512); lower it if tiling still runs out of memory."),
                UpsamplerAdapter.Input("upsampler_adapter", optional=True,
                                       tooltip="Optional learned upsampler adapter (Load Upsampler Adapter), applied in "
                                               "every stage with that stage's pivot."),
                io.Float.Input("adapter_strength", default=1.0, min=0.0, max=10.0, step=0.01, optional=True,
                               tooltip="Multiplier of the adapter's features (1.0 as trained)."),
            ],
            outputs=[io.Image.Output(tooltip="The upscaled image (same number of images or frames)."),
                     io.Latent.Output(tooltip="The latent at the target size, for further sampling or a tiled decode.")],
        )

    @classmethod
    def execute(cls, image, vae, model, positive, negative, seed, steps, cfg, sampler_name, scheduler, scale_by,
                target_width, target_height, k, later_k, upscale_method, stage_steps, pixel_pivot, tile, tile_size,
                upsampler_adapter=None, adapter_strength=1.0) -> io.NodeOutput:
        # the host's min/max checks let a JSON NaN through; this refuses it with the setting's limits
        limits.check_values(limits.CASCADE, dict(steps=steps, stage_steps=stage_steps, k=k, later_k=later_k,
                                                 scale_by=scale_by, target_width=target_width,
                                                 target_height=target_height))
        settings = CascadeSettings(seed, steps, cfg, sampler_name, scheduler, k, upscale_method, stage_steps,
                                   later_k=later_k)
        result = run_upscale(model, vae, positive, negative, image, detect_family(model, vae), settings, scale_by,
                             target_width, target_height, tile, tile_size, pixel_pivot,
                             adapter_stage_patch(model, upsampler_adapter, adapter_strength))
        return io.NodeOutput(result.images, result.latent, ui=ui.PreviewText("\n".join(result.report)))


NODES = [SelfCascadeUpscale]
