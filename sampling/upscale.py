"""Self-Cascade Upscale: an existing image is the first pivot. Encode it once, climb, decode.

The stages between encode and decode are ``CascadeRun.climb``, the Self-Cascade KSampler's own
stage loop: stage r upsamples the previous clean latent (the encoded image for stage 1), re-noises
it to that stage's K with noise seed ``seed + r`` and denoises. Encoding and decoding are the host's
VAE Encode / VAE Decode, or their tiled twins with the host's defaults, so the result is what the
graph VAE Encode -> (Pivot Upscale + Pivot Reschedule + SamplerCustom) per stage -> VAE Decode gives.

Tiling (``tile``): ``auto`` tiles a pass when a frame has more than ``AUTO_TILE_PIXELS`` pixels
(2048x2048), or when ComfyUI's own memory estimate for the pass (``vae.memory_used_encode`` /
``memory_used_decode``, the numbers its VAE uses to batch) exceeds the memory free for the VAE once
it is loaded (``free_memory``: the patcher's figure where the host has one, as its VAE asks);
``always`` and ``never`` force it. The report says what was done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
import torch

import comfy.model_management
import nodes as host_nodes

from .cascade import CascadeInputError, CascadeRun
from .families import Family
from .plan import MAX_SIDE, CascadePlan, plan_from_settings

TILE_MODES = ("auto", "always", "never")
AUTO_TILE_PIXELS = 2048 * 2048  # per frame; the SD VAE's decode at this size wants about 18 GB by ComfyUI's estimate
MIN_INPUT_SIDE = 8  # pixels; below it there is nothing to upscale
TEMPORAL_TILE, TEMPORAL_OVERLAP = 64, 8  # frames per tile of video VAEs: VAE Decode (Tiled)'s defaults
_GB = 1024**3


class UpscaleInputError(CascadeInputError):
    """An image or VAE Self-Cascade Upscale cannot take; the message names the problem and the fix."""


@dataclass(frozen=True)
class VaePass:
    """What one encode or decode did, for the report."""

    name: str  # "input" or "output"
    width: int
    height: int
    frames: int
    video: bool
    tiled: bool
    reason: str
    seconds: float

    def line(self) -> str:
        items = f"{self.frames} frame{'s' if self.frames != 1 else ''}" if self.video else \
            f"{self.frames} image{'s' if self.frames != 1 else ''}"
        verb = "encoded" if self.name == "input" else "decoded"
        how = "tiled" if self.tiled else "not tiled"
        return f"{self.name}: {self.width}x{self.height}, {items}, {verb} {how} ({self.reason}), {self.seconds:.2f} s"


@dataclass(frozen=True)
class UpscaleResult:
    images: torch.Tensor  # IMAGE (frames, height, width, 3)
    latent: dict  # LATENT at the target size
    report: list[str]


def encodes_clips(vae) -> bool:
    """A video VAE: the frames are encoded as one clip (3-D latents that are not an image VAE's single frames)."""
    return vae.latent_dim == 3 and not vae.not_video


def check_vae(model, vae) -> None:
    """Refuse a VAE of another family before any compute: its latents would not fit the model."""
    latent_format = model.get_model_object("latent_format")
    channels, dims = latent_format.latent_channels, getattr(latent_format, "latent_dimensions", 2)
    if vae.latent_channels != channels or vae.latent_dim != dims:
        kind = "video" if vae.latent_dim == 3 else "image"
        raise UpscaleInputError(
            f"the VAE makes {vae.latent_channels}-channel {kind} latents but this model expects {channels}-channel "
            f"{'video' if dims == 3 else 'image'} latents: it belongs to another model family. Connect this model's "
            "own VAE (the checkpoint loader's VAE output, or its family's VAE file in Load VAE).")


def prepare_image(image: torch.Tensor, vae) -> tuple[torch.Tensor, list[str]]:
    """The RGB frames the VAE will encode (alpha dropped, video padded to whole latent frames), and notes."""
    if image.ndim != 4:
        raise UpscaleInputError(f"the image has shape {tuple(image.shape)}; connect an IMAGE (frames, height, width, "
                                "channels), e.g. from Load Image or a video loader.")
    frames, height, width, channels = image.shape
    notes = []
    if channels == 4:
        image = image[..., :3]
        notes.append("the image's alpha channel was dropped, as VAE Encode does; composite it onto a background "
                     "first (Image Composite Masked) to choose what shows through")
    elif channels != 3:
        raise UpscaleInputError(f"the image has {channels} channels; connect an RGB image (3 channels, or 4 with "
                                "alpha, which is dropped).")
    factor = vae.spacial_compression_encode()
    smallest = max(MIN_INPUT_SIDE, factor)
    if min(width, height) < smallest:
        raise UpscaleInputError(f"the image is {width}x{height} px, too small to upscale: Self-Cascade Upscale needs "
                                f"at least {smallest}x{smallest} px. Use a larger image.")
    if not torch.isfinite(image).all():
        raise UpscaleInputError("the image contains NaN or Inf values; fix the node that produced it.")
    if width % factor or height % factor:
        notes.append(f"input {width}x{height} is not a multiple of the VAE's {factor} px: VAE Encode keeps the centre "
                     f"{width // factor * factor}x{height // factor * factor}")
    temporal = vae.temporal_compression_decode() if encodes_clips(vae) else None
    if temporal and (frames - 1) % temporal:
        extra = temporal - (frames - 1) % temporal
        image = torch.cat([image, image[-1:].expand(extra, -1, -1, -1)])
        notes.append(f"{frames} frames padded with {extra} copies of the last for the video VAE "
                     f"({temporal}n + 1 frames); the output is cut back to {frames}")
    return image, notes


def input_size(image: torch.Tensor, vae) -> tuple[int, int]:
    """The pixel size VAE Encode keeps of ``image`` (the centre, cut to the VAE's latent cell)."""
    factor = vae.spacial_compression_encode()
    return image.shape[2] // factor * factor, image.shape[1] // factor * factor


def plan_upscale(image: torch.Tensor, vae, family: Family, scale_by: float, target_width: int,
                 target_height: int, max_side: int = MAX_SIDE) -> CascadePlan:
    """Stages from the input's size to the target; a target not larger than the input is one pass at its size."""
    width, height = input_size(image, vae)
    return plan_from_settings(width, height, scale_by, target_width, target_height, family.size_multiple, max_side,
                              single_pass=True)


def _pixel_shape(vae, pixels: torch.Tensor) -> tuple[int, ...]:
    """``pixels`` (frames, H, W, C) in the layout ``VAE.encode`` hands its memory estimate."""
    frames, height, width, channels = pixels.shape
    if vae.latent_dim == 3:
        return (frames, channels, 1, height, width) if vae.not_video else (1, channels, frames, height, width)
    return frames, channels, height, width


def free_memory(vae) -> int:
    """Memory free for a VAE pass, as the host's own VAE asks: its patcher's figure where the host has
    one (ComfyUI 0.33 adds what dynamic VRAM can give back), else the device's free memory."""
    patcher_free = getattr(vae.patcher, "get_free_memory", None)
    if callable(patcher_free):
        return patcher_free(vae.device)
    return comfy.model_management.get_free_memory(vae.device)


def tiling(vae, mode: str, frame_pixels: int, estimate: float) -> tuple[bool, str]:
    """Whether to tile a pass, and why, in words for the report."""
    if mode != "auto":
        return mode == "always", f"tile = {mode}"
    megapixels = frame_pixels / 1e6
    if frame_pixels > AUTO_TILE_PIXELS:
        return True, f"auto: {megapixels:.1f} MP per frame, above {AUTO_TILE_PIXELS / 1e6:.1f} MP"
    comfy.model_management.load_models_gpu([vae.patcher], memory_required=estimate, force_full_load=vae.disable_offload)
    free = free_memory(vae)
    if estimate > free:
        return True, f"auto: ComfyUI estimates {estimate / _GB:.1f} GB, {free / _GB:.1f} GB free"
    return False, f"auto: ComfyUI estimates {estimate / _GB:.2f} GB, {free / _GB:.1f} GB free"


def encode(vae, pixels: torch.Tensor, tile: str, tile_size: int, video: bool) -> tuple[dict, VaePass]:
    """``pixels`` through VAE Encode, or VAE Encode (Tiled) with ``tile_size`` px tiles."""
    started = time.perf_counter()
    tiled, reason = tiling(vae, tile, pixels.shape[1] * pixels.shape[2],
                           vae.memory_used_encode(_pixel_shape(vae, pixels), vae.vae_dtype))
    if tiled:
        (latent,) = host_nodes.VAEEncodeTiled().encode(vae, pixels, tile_size, tile_size // 8, TEMPORAL_TILE,
                                                       TEMPORAL_OVERLAP)
    else:
        (latent,) = host_nodes.VAEEncode().encode(vae, pixels)
    width, height = input_size(pixels, vae)
    return latent, VaePass("input", width, height, pixels.shape[0], video, tiled, reason, time.perf_counter() - started)


def decode(vae, latent: dict, frames: int, tile: str, tile_size: int, video: bool) -> tuple[torch.Tensor, VaePass]:
    """``latent`` through VAE Decode, or VAE Decode (Tiled); video frames cut back to ``frames``."""
    started = time.perf_counter()
    samples = latent["samples"]
    factor = vae.spacial_compression_decode()
    tiled, reason = tiling(vae, tile, samples.shape[-1] * samples.shape[-2] * factor * factor,
                           vae.memory_used_decode(samples.shape, vae.vae_dtype))
    if tiled:
        (images,) = host_nodes.VAEDecodeTiled().decode(vae, latent, tile_size, tile_size // 8, TEMPORAL_TILE,
                                                       TEMPORAL_OVERLAP)
    else:
        (images,) = host_nodes.VAEDecode().decode(vae, latent)
    if video:
        images = images[:frames]
    return images, VaePass("output", images.shape[2], images.shape[1], images.shape[0], video, tiled, reason,
                           time.perf_counter() - started)


@dataclass(frozen=True)
class UpscaleSource:
    """The image as the cascade takes it, checked and planned (``prepare_upscale``)."""

    pixels: torch.Tensor  # the RGB frames VAE Encode gets (a clip padded to whole latent frames)
    frames: int  # frames of the input: a clip's output is cut back to them
    plan: CascadePlan
    notes: list[str]


def prepare_upscale(model, vae, image: torch.Tensor, family: Family, scale_by: float, target_width: int,
                    target_height: int) -> UpscaleSource:
    """Check the VAE and the image, and plan from the size VAE Encode keeps. ``family`` is the model's seen
    through ``vae`` (``families.detect_family(model, vae)``: the VAE decides the cell size)."""
    check_vae(model, vae)
    pixels, notes = prepare_image(image, vae)
    plan = plan_upscale(pixels, vae, family, scale_by, target_width, target_height)
    return UpscaleSource(pixels, image.shape[0], plan, notes)


def run_upscale(run: CascadeRun, vae, source: UpscaleSource, tile: str = "auto", tile_size: int = 512) -> UpscaleResult:
    """Encode ``source`` (the first pivot), climb with ``run`` (made on ``source.plan``), decode.

    The report has a line for the encode, each stage and the decode, then the plan's and the input's
    notes and what was assumed of an unknown family.
    """
    video = encodes_clips(vae)
    latent, encoded = encode(vae, source.pixels, tile, tile_size, video)
    out, stages = run.climb(latent)
    images, decoded = decode(vae, out, source.frames, tile, tile_size, video)
    return UpscaleResult(images, out, [encoded.line(), *(stage.line() for stage in stages), decoded.line(),
                                       *run.plan.notes, *source.notes, *run.notes,
                                       *filter(None, [run.family.assumption()])])
