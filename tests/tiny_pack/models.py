"""Tiny models of the real architectures, built from ComfyUI's own classes.

Each builder returns a ``comfy.model_patcher.ModelPatcher`` around a real ``comfy.model_base``
model whose config is a shrunk copy of the family's ``comfy.supported_models`` config. Weights are
drawn ``normal_(0, 0.02)`` from a fixed seed (``comfy.ops`` layers skip initialisation, so without
this they would hold garbage). Conditioning builders give context of the right width; ``build_vae``
gives a real ``comfy.sd.VAE`` around a narrow SD-style ``AutoencoderKL`` (8x, 4 latent channels),
``build_video_vae`` one around a narrow Wan 2.1 video VAE (8x, 4 frames per latent frame, 16 channels).

Test-only: imported by the tiny node pack (for the server) and by in-process tests.
"""
from __future__ import annotations

import dataclasses

import torch

import comfy.ldm.chroma_radiance.model
import comfy.ldm.flux.model
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
from comfy.ldm.models.autoencoder import AutoencoderKL

CONTEXT_DIM = 32
POOLED_DIM = 32
FAMILIES = ("sd15", "sd20v", "sdxl", "flux", "wan")
# ChromaRadiance (pixel space, 16 px patches) at test width: its config, for tests of family detection
CHROMA_RADIANCE_CONFIG = {
    "image_model": "chroma_radiance", "in_channels": 3, "out_channels": 3, "context_in_dim": 32, "hidden_size": 64,
    "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000,
    "patch_size": 16, "qkv_bias": True, "in_dim": 64, "out_dim": 64, "hidden_dim": 64, "n_layers": 1,
    "nerf_hidden_size": 16, "nerf_mlp_ratio": 2, "nerf_depth": 1, "nerf_max_freqs": 8, "nerf_tile_size": 0,
    "nerf_final_head_type": "conv", "nerf_embedder_dtype": torch.float32}


def _host_fields(config: dict, params_class: type, newer: dict) -> dict:
    """``config`` plus those of ``newer``'s fields the host's ``params_class`` dataclass requires (a newer
    host's detection sets them; an older host's dataclass would refuse them)."""
    fields = {field.name for field in dataclasses.fields(params_class)}
    return {**config, **{name: value for name, value in newer.items() if name in fields}}


# ComfyUI 0.33's detection of a ChromaRadiance file without __x0__ / __sequential__ markers or vector_in
CHROMA_RADIANCE_CONFIG = _host_fields(CHROMA_RADIANCE_CONFIG, comfy.ldm.chroma_radiance.model.ChromaRadianceParams,
                                      {"txt_ids_dims": [], "vec_in_dim": None, "use_x0": False,
                                       "use_sequential_txt_ids": False})

_UNET_COMMON = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "transformer_depth_middle": 1,
    "context_dim": CONTEXT_DIM,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "adm_in_channels": None,
}


def _unet_config(family: str) -> tuple[type, dict, comfy.model_base.ModelType]:
    if family == "sd15":
        return comfy.supported_models.SD15, {**_UNET_COMMON, "use_linear_in_transformer": False}, comfy.model_base.ModelType.EPS
    if family == "sd20v":
        return comfy.supported_models.SD20, {**_UNET_COMMON, "use_linear_in_transformer": True}, comfy.model_base.ModelType.V_PREDICTION
    if family == "sdxl":
        config = {
            **_UNET_COMMON,
            "use_linear_in_transformer": True,
            "num_res_blocks": [2, 2, 2],
            "channel_mult": [1, 2, 4],
            "transformer_depth": [0, 0, 1, 1, 1, 1],
            "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
            "adm_in_channels": POOLED_DIM + 6 * 256,
            "num_classes": "sequential",
        }
        return comfy.supported_models.SDXL, config, comfy.model_base.ModelType.EPS
    raise ValueError(family)


def _flux_params(config: dict, txt_ids_dims: list) -> dict:
    """``config`` with the fields a newer host's ``FluxParams`` requires, as its detection sets them
    (ComfyUI 0.33: ``txt_ids_dims``, [] for Flux and [3] for Flux.2)."""
    return _host_fields(config, comfy.ldm.flux.model.FluxParams, {"txt_ids_dims": txt_ids_dims})


def _dit_config(family: str) -> tuple[type, dict]:
    if family == "flux":
        return comfy.supported_models.FluxSchnell, _flux_params({
            "image_model": "flux", "guidance_embed": False, "in_channels": 16, "out_channels": 16,
            "vec_in_dim": POOLED_DIM, "context_in_dim": CONTEXT_DIM, "hidden_size": 64, "mlp_ratio": 2.0,
            "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000,
            "patch_size": 2, "qkv_bias": True,
        }, [])
    if family == "flux2":  # 128 channels at 16 px per cell, no patches (not in FAMILIES, which tests parametrise over)
        return comfy.supported_models.Flux2, _flux_params({
            "image_model": "flux2", "guidance_embed": False, "in_channels": 128, "out_channels": 128,
            "vec_in_dim": None, "context_in_dim": CONTEXT_DIM, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2,
            "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1,
            "qkv_bias": False, "global_modulation": True, "mlp_silu_act": True, "ops_bias": False,
            "default_ref_method": "index", "ref_index_scale": 10.0,
        }, [3])
    if family == "wan":
        return comfy.supported_models.WAN21_T2V, {
            "image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "text_len": 8,
            "in_dim": 16, "dim": 64, "ffn_dim": 128, "freq_dim": 32, "text_dim": CONTEXT_DIM, "out_dim": 16,
            "num_heads": 2, "num_layers": 1, "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True,
            "eps": 1e-6,
        }
    raise ValueError(family)


def build_model(family: str, seed: int = 0, width: int = 32) -> comfy.model_patcher.ModelPatcher:
    """A ModelPatcher around a tiny ``family`` model with seeded ``normal_(0, 0.02)`` weights
    (``width``: a UNet's model_channels, for tests that need weights of some size)."""
    device = comfy.model_management.get_torch_device()
    offload = comfy.model_management.unet_offload_device()
    if family in ("flux", "flux2", "wan"):
        config_cls, unet_config = _dit_config(family)
        model_config = config_cls(unet_config)
        model_config.set_inference_dtype(torch.float32, None)
        model = model_config.get_model({}, device=offload)
    else:
        config_cls, unet_config, model_type = _unet_config(family)
        model_config = config_cls({**unet_config, "model_channels": width})
        model_config.unet_config.update(num_heads=-1, num_head_channels=16)  # family extras assume wide heads
        model_config.set_inference_dtype(torch.float32, None)
        model_class = comfy.model_base.SDXL if family == "sdxl" else comfy.model_base.BaseModel
        model = model_class(model_config, model_type=model_type, device=offload)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.diffusion_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=offload)


def build_conditioning(family: str, seed: int = 0, tokens: int = 8) -> list:
    """ComfyUI CONDITIONING ``[[context, extras]]`` of the width ``family`` expects."""
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn((1, tokens, CONTEXT_DIM), generator=generator)
    extras: dict = {}
    if family in ("sdxl", "flux", "flux2"):  # Flux.2 ignores it, but older hosts' Flux conditioning asks for it
        extras["pooled_output"] = torch.randn((1, POOLED_DIM), generator=generator)
    return [[context, extras]]


def latent_channels(family: str) -> int:
    return {"flux": 16, "wan": 16, "flux2": 128}.get(family, 4)


# SD's AutoencoderKL layout (8x down, 4 latent channels) at the narrowest width its GroupNorm(32) allows
_VAE_CONFIG = {"params": {"embed_dim": 4, "ddconfig": {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}}


def random_vae(config: dict, seed: int = 0) -> comfy.sd.VAE:
    """A real ``comfy.sd.VAE`` of an ``AutoencoderKL`` ``config`` with seeded ``normal_(0, 0.02)`` weights."""
    generator = torch.Generator().manual_seed(seed)
    shapes = AutoencoderKL(**config["params"]).state_dict()
    state_dict = {name: torch.randn(value.shape, generator=generator) * 0.02 if value.is_floating_point() else value
                  for name, value in shapes.items()}
    return comfy.sd.VAE(sd=state_dict, config=config)


def build_vae(seed: int = 0) -> comfy.sd.VAE:
    """The tiny VAE: SD1.x/SDXL latent layout, narrowest width."""
    return random_vae(_VAE_CONFIG, seed)


def build_flux_vae(seed: int = 0) -> comfy.sd.VAE:
    """The tiny VAE with Flux's (and SD3's) 16 latent channels, for image workflows on the tiny flux model."""
    params = _VAE_CONFIG["params"]
    vae = random_vae({"params": {**params, "embed_dim": 16, "ddconfig": {**params["ddconfig"], "z_channels": 16}}}, seed)
    vae.latent_channels = 16  # the host sets it only when it detects the layout itself (config=None)
    return vae


def build_video_vae(seed: int = 0) -> comfy.sd.VAE:
    """The tiny Wan 2.1 VAE: the tiny Wan model's latent layout, the host's own WanVAE at width 8."""
    from comfy.ldm.wan.vae import WanVAE

    shapes = WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0).state_dict()
    generator = torch.Generator().manual_seed(seed)
    state_dict = {name: torch.randn(value.shape, generator=generator) * 0.02 if value.is_floating_point() else value
                  for name, value in shapes.items()}
    return comfy.sd.VAE(sd=state_dict)  # the host detects the Wan 2.1 layout from the keys


def build_controlnet(family: str = "sd15", seed: int = 1):
    """A tiny real ``comfy.controlnet.ControlNet`` matching ``build_model(family)`` (UNet families)."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    base = build_model(family, seed)
    config = {k: v for k, v in base.model.model_config.unet_config.items()
              if k not in ("transformer_depth_output", "use_temporal_attention", "use_temporal_resblock", "dtype", "out_channels")}
    control_model = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=comfy.ops.disable_weight_init, **config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in control_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return comfy.controlnet.ControlNet(control_model,  # classic: its own hint encoder, pixel-space hint
                                       load_device=comfy.model_management.get_torch_device())
