"""The flow demo model: a small Flux-style transformer that draws one to three discs at 32x32.

The second demo model, beside the UNet of ``demo_model``: same disc family, same prompts (a fixed
random context per count, the empty context for CFG's negative), same pixel-space "VAE" and latent
format, but the architecture and the sampling most ComfyUI users run today. Everything is the
host's own: ``comfy.ldm.flux.model.Flux`` (4x4-pixel patches as tokens, RoPE positions over
``axes_dim``, double-stream then single-stream blocks, a pooled prompt vector, no guidance embedding) in
``comfy.model_base.Flux`` with ``ModelType.FLOW``: CONST prediction (velocity, x_t = (1 - sigma) x_0
+ sigma * noise) on ``ModelSamplingDiscreteFlow`` with multiplier 1 and a shift, as the host loads
Flux Schnell (multiplier 1) and SD3 (shift 3). Sampling-shift nodes (ModelSamplingAuraFlow,
ModelSamplingFlux) act on it as on those models.

Patches of 4x4 pixels keep it cheap where the cascade goes: 64 tokens at 32x32, 1024 at 128x128.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch

import comfy.ldm.flux.model
import comfy.model_base
import comfy.model_patcher
import comfy.supported_models_base

from . import demo_model

WEIGHTS = Path(__file__).resolve().parent / "disc_counter_flow_32px.safetensors"
LOG_NAME = "train_log_flow.csv"
NATIVE_SIZE = demo_model.NATIVE_SIZE
COUNTS = demo_model.COUNTS
PATCH_SIZE = 4
SHIFT = 3.0  # SD3's; the trainer draws sigmas from the host's table at this shift

FLUX_CONFIG = {
    "image_model": "flux",
    "in_channels": 3,
    "out_channels": 3,
    "vec_in_dim": demo_model.CONTEXT_DIM,  # the pooled prompt (Flux: CLIP's), here the mean of the count's context
    "context_in_dim": demo_model.CONTEXT_DIM,
    "hidden_size": 96,
    "mlp_ratio": 4.0,
    "num_heads": 3,
    "depth": 2,
    "depth_single_blocks": 4,
    "axes_dim": [4, 14, 14],  # (index, row, column), summing to the head width 32; the index axis is 0 for images
    "theta": 10000,
    "patch_size": PATCH_SIZE,
    "qkv_bias": True,
    "guidance_embed": False,
}
# newer hosts (ComfyUI 0.33) require which position axes the text tokens' ids fill; [] as their detection gives
# Flux.1 (text ids all zero, as older hosts have them)
if "txt_ids_dims" in {field.name for field in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}:
    FLUX_CONFIG["txt_ids_dims"] = []


class SelfCascadeDemoFlow(comfy.supported_models_base.BASE):
    """Config of the flow demo model; ``sampling/families.py`` maps this class name to its family."""

    unet_config = {"image_model": "flux", "in_channels": 3, "context_in_dim": demo_model.CONTEXT_DIM}
    unet_extra_config: dict = {}  # BASE's are a UNet's
    sampling_settings = {"multiplier": 1.0, "shift": SHIFT}
    latent_format = demo_model.DemoPixelSpace
    memory_usage_factor = 1.0

    def get_model(self, state_dict, prefix="", device=None):
        return comfy.model_base.Flux(self, model_type=comfy.model_base.ModelType.FLOW, device=device)


def build_flow_model(device: Optional[torch.device] = None) -> comfy.model_base.Flux:
    """The flow demo model with uninitialised float32 weights (``comfy.ops`` layers skip init)."""
    config = SelfCascadeDemoFlow(FLUX_CONFIG)
    config.set_inference_dtype(torch.float32, None)
    return config.get_model({}, device=device)


def pooled(context: torch.Tensor) -> torch.Tensor:
    """The pooled prompt vector (1, CONTEXT_DIM) of a count's context: it modulates every block, as Flux's does."""
    return context.mean(dim=1)


def conditioning(context: torch.Tensor) -> list:
    """A ComfyUI CONDITIONING of one context with its pooled vector (``model_base.Flux`` reads ``pooled_output``)."""
    return [[context, {"pooled_output": pooled(context)}]]


def load_weights(path: Path = WEIGHTS) -> tuple[comfy.model_patcher.ModelPatcher, dict[int, torch.Tensor]]:
    """The trained flow demo model as a MODEL, and its count contexts (0 = empty)."""
    return demo_model.load_weights(path, build=build_flow_model)
