"""The pivot: the previous stage's clean latent, upsampled to the next stage's size.

Eq. 6 of the paper re-noises the upsampled pivot to t = K. We leave the noise to the host's
sampler: it applies ``model_sampling.noise_scaling(sigmas[0], noise, latent)`` when a schedule
starts at the cut sigma, which is exact for eps, v-prediction, EDM and flow models alike.
"""
from __future__ import annotations

import torch

import comfy.utils

from .plan import StageSize

LATENT_METHODS = ("bilinear", "bicubic", "nearest-exact", "area", "bislerp")


def upscale_latent(samples: torch.Tensor, width: int, height: int, method: str = "bilinear") -> torch.Tensor:
    """Resize a latent to ``width`` x ``height`` latent cells, in space only.

    4-D latents (image batches, AnimateDiff frame batches) keep their batch; 5-D video latents
    (B, C, T, H, W) keep their frame count. Same call as ComfyUI's LatentUpscale.
    """
    if method not in LATENT_METHODS:
        raise ValueError(f"unknown upscale method '{method}'; choose one of {', '.join(LATENT_METHODS)}.")
    return comfy.utils.common_upscale(samples, width, height, method, "disabled")


def upscale_through_pixels(vae, samples: torch.Tensor, width: int, height: int, method: str = "bilinear") -> torch.Tensor:
    """Decode, resize the image to ``width`` x ``height`` pixels, encode: for latents that resize badly."""
    pixel_method = "bilinear" if method == "bislerp" else method
    images = vae.decode(samples)
    if images.ndim == 5:  # video VAEs decode to (B, T, H, W, C)
        frames = images.reshape(-1, *images.shape[-3:])
        resized = comfy.utils.common_upscale(frames.movedim(-1, 1), width, height, pixel_method, "disabled").movedim(1, -1)
        resized = resized.reshape(*images.shape[:2], *resized.shape[1:])
    else:
        resized = comfy.utils.common_upscale(images.movedim(-1, 1), width, height, pixel_method, "disabled").movedim(1, -1)
    return vae.encode(resized[..., :3])


def upscale_pivot(samples: torch.Tensor, size: StageSize, latent_factor: int, method: str = "bilinear",
                  vae=None) -> torch.Tensor:
    """The pivot resized to a stage of ``size`` pixels: through the VAE's pixels when one is given,
    else in latent space to ``size`` / ``latent_factor`` cells. Both cascade paths call this."""
    if vae is not None:
        return upscale_through_pixels(vae, samples, size.width, size.height, method)
    return upscale_latent(samples, size.width // latent_factor, size.height // latent_factor, method)
