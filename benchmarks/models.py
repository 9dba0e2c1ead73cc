"""The models benchmarked: full-size SD1.5 and SDXL UNets with random weights, or the test suite's tiny ones.

Full size: the host's own classes (``comfy.supported_models.SD15`` / ``SDXL``, ``comfy.model_base``)
with the full UNet configs the host detects from real checkpoints (``comfy/model_detection.py``,
``unet_config_from_diffusers_unet``), weights drawn ``normal_(0, 0.02)`` (``comfy.ops`` layers skip
initialisation), and an SD/SDXL-shaped ``AutoencoderKL`` (128 wide, 8x, 4 channels). Random weights
cost the same time and memory as trained ones; what they draw is noise, which no figure here reads.
Tiny: ``tests/tiny_pack/models.py``, the models every in-process test runs, so the smoke mode runs
exactly the code the GPU mode runs, on models a loaded CPU samples in milliseconds.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models

TESTS = Path(__file__).resolve().parent.parent / "tests"
FAMILIES = ("sd15", "sdxl")
TOKENS = 77

FULL_UNET = {
    "sd15": {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
             "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4],
             "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
             "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
             "use_temporal_attention": False, "use_temporal_resblock": False},
    "sdxl": {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False},
}
POOLED_WIDTH = {"sd15": None, "sdxl": 1280}
_CONFIG_CLASS = {"sd15": comfy.supported_models.SD15, "sdxl": comfy.supported_models.SDXL}
_MODEL_CLASS = {"sd15": comfy.model_base.BaseModel, "sdxl": comfy.model_base.SDXL}
FULL_VAE = {"params": {"embed_dim": 4, "ddconfig": {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}}}


@dataclass(frozen=True)
class ModelSet:
    """What one benchmarked family needs: MODEL, VAE and a positive and negative CONDITIONING."""

    family: str
    model: object  # ComfyUI MODEL (ModelPatcher)
    vae: comfy.sd.VAE
    positive: list
    negative: list
    description: str


def full_unet(family: str, dtype: torch.dtype, device: torch.device, seed: int = 0) -> comfy.model_base.BaseModel:
    """The full-size UNet of ``family`` on ``device`` (``meta``: shapes only), weights ``normal_(0, 0.02)``."""
    model_config = _CONFIG_CLASS[family](dict(FULL_UNET[family]))
    model_config.set_inference_dtype(dtype, None)
    model = _MODEL_CLASS[family](model_config, model_type=comfy.model_base.ModelType.EPS, device=device)
    if device.type != "meta":
        generator = torch.Generator(device).manual_seed(seed)
        with torch.no_grad():
            for parameter in model.diffusion_model.parameters():
                parameter.normal_(0.0, 0.02, generator=generator)
    return model


def full_vae(seed: int = 0) -> comfy.sd.VAE:
    """An SD/SDXL-shaped VAE (the host picks its device and dtype), weights ``normal_(0, 0.02)``."""
    return _tiny_pack_models().random_vae(FULL_VAE, seed)


def _full_conditioning(family: str, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn((1, TOKENS, FULL_UNET[family]["context_dim"]), generator=generator)
    extras = {}
    if POOLED_WIDTH[family]:
        extras["pooled_output"] = torch.randn((1, POOLED_WIDTH[family]), generator=generator)
    return [[context, extras]]


def full_models(family: str, dtype: torch.dtype = torch.float16) -> ModelSet:
    """Full-size random-weight ``family`` built on the device ComfyUI samples on, loaded as a checkpoint would be."""
    device = comfy.model_management.get_torch_device()
    model = comfy.model_patcher.ModelPatcher(full_unet(family, dtype, device), load_device=device,
                                             offload_device=comfy.model_management.unet_offload_device())
    comfy.model_management.load_models_gpu([model], force_full_load=True)
    parameters = sum(p.numel() for p in model.model.diffusion_model.parameters())
    return ModelSet(family, model, full_vae(), _full_conditioning(family, 0), _full_conditioning(family, 1),
                    f"full-size {family} UNet ({parameters / 1e6:.0f}M parameters, {str(dtype).removeprefix('torch.')}, "
                    "random weights)")


def tiny_models(family: str) -> ModelSet:
    """The test suite's tiny ``family`` (tests/tiny_pack), fp32."""
    tiny = _tiny_pack_models()
    return ModelSet(family, tiny.build_model(family), tiny.build_vae(), tiny.build_conditioning(family),
                    tiny.build_conditioning(family, seed=1), f"tiny {family} (tests/tiny_pack, fp32, random weights)")


def _tiny_pack_models():
    """``tests/tiny_pack/models.py``: the tiny models and the random-weight VAE builder both modes use."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from tiny_pack import models

    return models
