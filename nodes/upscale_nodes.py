"""Self-Cascade Upscale: an image you already have -> the same cascade as the KSampler's -> a larger image."""
from __future__ import annotations

from ..adapters.stage_patch import adapter_stage_patch
from ..sampling import limits
from ..sampling.cascade import CascadeRun
from ..sampling.families import detect_family
from ..sampling.upscale import AUTO_TILE_PIXELS, TILE_MODES, prepare_upscale, run_upscale
from .api import CATEGORY, io, ui
from .cascade_inputs import Wording, adapter_inputs, cascade_settings, k_axis_input, sampler_inputs, stage_inputs

UPSCALE_K = 0.5  # lower than the KSampler's 0.7: here the first pivot is the user's own image (README: measured)
WORDING = Wording(
    seed=("Noise seed: stage r uses seed + r, as stage r of the Self-Cascade KSampler (and noise_seed of a "
          "hand-built stage r) does."),
    steps="Steps of the full schedule; each stage runs the part of it below its K.",
    scheduler="Scheduler for every stage; each stage uses its cut at K.",
    scale_by="Target size as a per-side factor of the image; used when target width/height are 0.",
    target_width=("Final width in pixels (0: use scale_by). Rounded to the model's size multiple. A target not "
                  "larger than the image runs one pass at the target size."),
    k=("K of the first stage: how much of your image may change, as a fraction of the model's time range (the "
       "encoded image is re-noised to t = K). Lower keeps the image (composition, object count, colours) and adds "
       "less detail; higher repaints more and may move or repeat objects. k_axis says how K is read on flow models "
       "(Flux, SD3, Wan)."),
    later_k=("K of the second and later stages; 0 uses k for every stage. They start from a pivot the model already "
             "drew at twice the input's size."),
    upscale_method="How each pivot is upsampled (paper: bilinear; official code: bicubic).",
    stage_steps="Steps per stage; 0 derives them from K and steps (15 of 30 at K = 0.5).",
    adapter=("Optional learned upsampler adapter (Load Upsampler Adapter), applied in every stage with that stage's "
             "pivot."),
    k_default=UPSCALE_K,
)
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
                *sampler_inputs(WORDING),
                *stage_inputs(WORDING),
                io.Boolean.Input("pixel_pivot", default=False,
                                 tooltip=("Upsample each pivot in pixel space (decode, resize, encode) instead of in "
                                          "latent space: for models whose latents resize badly (Flux, SD3).")),
                io.Combo.Input("tile", options=list(TILE_MODES), default="auto", tooltip=TILE_TOOLTIP),
                io.Int.Input("tile_size", default=512, min=64, max=4096, step=64,
                             tooltip="Tile side in pixels when tiled (the host's default 512); lower it if tiling still runs out of memory."),
                *adapter_inputs(WORDING),
                k_axis_input(),
            ],
            outputs=[io.Image.Output(tooltip="The upscaled image (same number of images or frames)."),
                     io.Latent.Output(tooltip="The latent at the target size, for further sampling or a tiled decode.")],
        )

    @classmethod
    def execute(cls, image, vae, model, positive, negative, seed, steps, cfg, sampler_name, scheduler, scale_by,
                target_width, target_height, k, later_k, upscale_method, stage_steps, pixel_pivot, tile, tile_size,
                upsampler_adapter=None, adapter_strength=1.0, k_axis=limits.K_AXIS.default) -> io.NodeOutput:
        settings = cascade_settings(seed, steps, cfg, sampler_name, scheduler, scale_by, target_width, target_height, k,
                                    later_k, upscale_method, stage_steps, k_axis=k_axis)
        family = detect_family(model, vae)
        stage_patch = adapter_stage_patch(model, upsampler_adapter, adapter_strength)
        source = prepare_upscale(model, vae, image, family, scale_by, target_width, target_height)
        run = CascadeRun(model, positive, negative, source.plan, family, settings, vae if pixel_pivot else None,
                         stage_patch)
        result = run_upscale(run, vae, source, tile, tile_size)
        return io.NodeOutput(result.images, result.latent, ui=ui.PreviewText("\n".join(result.report)))


NODES = [SelfCascadeUpscale]
