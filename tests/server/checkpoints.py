"""A small checkpoint file in the real SD1.5 layout, for tests that load checkpoints by file.

Why: ``CheckpointLoaderSimple`` detects the family from the file's shapes, which needs SD1.5's real
widths (320 UNet channels, the 768-wide CLIP-L text encoder, the full VAE), so the tiny pack's
models cannot be saved as one. The UNet here keeps those widths but only three one-block levels
with attention at the lowest, so it samples in seconds on a CPU; weights are seeded
``normal_(0, 0.02)``, stored in fp16 (about 470 MB). Written with the host's own ``BaseModel.
state_dict_for_saving`` and ``comfy.utils.save_torch_file``.
"""
from __future__ import annotations

from pathlib import Path

import torch

import comfy.model_base
import comfy.sd1_clip
import comfy.supported_models
import comfy.utils
from comfy.ldm.models.autoencoder import AutoencoderKL
from selfcascade.benchmarks.real_layout import checkpoint_state_dict

SD15_SMALL_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False, "in_channels": 4,
    "out_channels": 4, "model_channels": 320, "num_res_blocks": [1, 1, 1], "channel_mult": [1, 1, 1],
    "transformer_depth": [0, 0, 1], "transformer_depth_output": [0, 0, 0, 0, 1, 1], "transformer_depth_middle": 1,
    "context_dim": 768, "num_heads": 8, "use_linear_in_transformer": False, "adm_in_channels": None,
    "use_temporal_attention": False, "use_temporal_resblock": False,
}
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def write_sd15_checkpoint(path: Path, seed: int = 0) -> Path:
    generator = torch.Generator().manual_seed(seed)

    def seeded(state_dict: dict) -> dict:
        return {name: (torch.randn(value.shape, generator=generator) * 0.02).half() if value.is_floating_point()
                else value for name, value in state_dict.items()}

    model = comfy.model_base.BaseModel(comfy.supported_models.SD15(SD15_SMALL_UNET), device="cpu")
    model.diffusion_model.load_state_dict(seeded(model.diffusion_model.state_dict()))
    model.diffusion_model.half()
    clip = seeded(comfy.sd1_clip.SD1ClipModel(device="cpu").state_dict())
    vae = seeded(AutoencoderKL(ddconfig=SD_VAE, embed_dim=4).state_dict())
    comfy.utils.save_torch_file(checkpoint_state_dict(model, clip, vae), str(path))
    return path
