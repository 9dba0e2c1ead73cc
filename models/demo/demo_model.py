"""The demo model: a pixel-space SD1.x-style UNet that draws one to three discs at 32x32.

Everything is ComfyUI's own: a ``supported_models_base.BASE`` config, ``model_base.BaseModel``
(so ``openaimodel.UNetModel``, eps prediction, the default ``ModelSamplingDiscrete``) and, as the
"VAE", the host's pixel-space conversion (``comfy.sd.VAE`` of a ``pixel_space_vae`` state dict,
the one ChromaRadiance uses: image [0, 1] <-> latent [-1, 1], 3 channels, factor 1). The prompt is
the object count: a fixed random context per count, read by cross-attention, and an "empty"
context (count 0) for CFG's negative. The weights and the contexts ship in ``WEIGHTS``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import safetensors.torch
import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base

WEIGHTS = Path(__file__).resolve().parent / "disc_counter_32px.safetensors"
NATIVE_SIZE = 32
COUNTS = (1, 2, 3)
CONTEXT_TOKENS = 4
CONTEXT_DIM = 32
_CONTEXT_KEY = "conditioning.count_{}"  # count 0 is the empty prompt

UNET_CONFIG = {
    "image_size": NATIVE_SIZE,
    "in_channels": 3,
    "out_channels": 3,
    "model_channels": 32,
    "num_res_blocks": [1, 1, 1],
    "channel_mult": [1, 1, 2],
    "transformer_depth": [0, 0, 1],  # attention at 8x8 and in the middle: global enough to count, cheap at 128x128
    "transformer_depth_output": [0, 0, 0, 0, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": CONTEXT_DIM,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "use_checkpoint": False,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "adm_in_channels": None,
}


class DemoPixelSpace(comfy.latent_formats.LatentFormat):
    """Pixels in [-1, 1] are the latent (3 channels, 1 pixel per cell), scaled to unit variance in the model.

    The scale is SD's 0.18215 for this data: 1 / 0.21, the std of the disc family's pixels. Without
    it the noise's per-channel mean is what the model predicts worst (with 32 channels its last
    GroupNorm(32) is an instance norm, blind to it), and it survives sampling as a colour cast.
    """

    latent_channels = 3
    scale_factor = 4.8

    def __init__(self):
        self.latent_rgb_factors = (torch.eye(3) / self.scale_factor).tolist()  # previews: model space -> pixels


class SelfCascadeDemo(comfy.supported_models_base.BASE):
    """Config of the demo UNet; ``sampling/families.py`` maps this class name to the demo family."""

    unet_config = {"in_channels": 3, "model_channels": 32, "context_dim": CONTEXT_DIM}
    unet_extra_config = {"num_heads": -1, "num_head_channels": 16}
    latent_format = DemoPixelSpace
    memory_usage_factor = 1.0

    def get_model(self, state_dict, prefix="", device=None):
        return comfy.model_base.BaseModel(self, model_type=comfy.model_base.ModelType.EPS, device=device)


def build_unet_model(device: Optional[torch.device] = None) -> comfy.model_base.BaseModel:
    """The demo BaseModel with uninitialised float32 weights (``comfy.ops`` layers skip init)."""
    config = SelfCascadeDemo(UNET_CONFIG)
    config.set_inference_dtype(torch.float32, None)
    return config.get_model({}, device=device)


def count_context(count: int, seed: int) -> torch.Tensor:
    """The fixed context (1, CONTEXT_TOKENS, CONTEXT_DIM) that stands for ``count`` (0: the empty prompt)."""
    generator = torch.Generator().manual_seed(seed * 1000 + count)
    return torch.randn((1, CONTEXT_TOKENS, CONTEXT_DIM), generator=generator)


def save_weights(model: comfy.model_base.BaseModel, contexts: dict[int, torch.Tensor], path: Path,
                 metadata: dict[str, str]) -> None:
    """UNet weights plus the count contexts in one safetensors file."""
    tensors = {key: value.detach().contiguous() for key, value in model.diffusion_model.state_dict().items()}
    tensors.update({_CONTEXT_KEY.format(count): context.contiguous() for count, context in contexts.items()})
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def _host_key(key: str, expected) -> str:
    """``key`` as this host names it: newer hosts (ComfyUI 0.33) call an RMSNorm's ``scale`` ``weight``, as
    their Flux loader renames it."""
    if key not in expected and key.endswith(".scale") and key.removesuffix(".scale") + ".weight" in expected:
        return key.removesuffix(".scale") + ".weight"
    return key


def load_weights(path: Path = WEIGHTS, build: Callable[..., comfy.model_base.BaseModel] = build_unet_model
                 ) -> tuple[comfy.model_patcher.ModelPatcher, dict[int, torch.Tensor]]:
    """A trained demo model (``build`` makes its architecture: this UNet by default) as a MODEL, and its count
    contexts (0 = empty)."""
    tensors = safetensors.torch.load_file(str(path))
    contexts = {count: tensors.pop(_CONTEXT_KEY.format(count)) for count in (0, *COUNTS)}
    offload = comfy.model_management.unet_offload_device()
    model = build(device=offload)
    expected = model.diffusion_model.state_dict().keys()
    model.diffusion_model.load_state_dict({_host_key(key, expected): value for key, value in tensors.items()},
                                          strict=True)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=offload)
    return patcher, contexts


def conditioning(context: torch.Tensor) -> list:
    """A ComfyUI CONDITIONING of one context."""
    return [[context, {}]]


def pixel_vae() -> comfy.sd.VAE:
    """The host's pixel-space "VAE": encode maps [0, 1] to [-1, 1], decode maps back and clamps."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})
