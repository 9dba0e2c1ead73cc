"""ComfyUI's own memory estimates for cascade stages of SD1.5, SDXL, Flux and Wan: the memory plan's table.

The models are the host's classes at full size on the meta device (no weights): SD1.5 and SDXL from
the UNet configs the host detects in real checkpoints (``benchmarks/models.py``), Flux.1-dev and
Wan 2.1 T2V 14B from the configs its detection gives those files (``FULL_DIT``), each built by
``sampling/memory.meta_model`` as the plan route builds them (dtype chosen by the host's loader for a
file stored in ``STORED_DTYPE`` on this device), with the family's VAE (SD's, Flux's 16-channel
``AutoencoderKL``, Wan 2.1's) on the meta device. Per stage side (1024, 2048, 4096 px, square, batch
1): the host's sampling estimate (``estimate_memory``, CFG's doubled batch), the weights and the VAE
decode of that stage's latent. The figures depend on the device (ComfyUI uses another formula where
flash attention is available, and fp32 weights on a CPU), which the results file records.

    python benchmarks/memory_plan.py   writes benchmarks/results/memory-plan.json
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "memory-plan.json"
SIDES = (1024, 2048, 4096)
FAMILIES = ("sd15", "sdxl", "flux", "wan")
LATENT_FACTOR = 8  # all four: 8 px per latent cell
STORED_DTYPE = {"sd15": torch.float16, "sdxl": torch.float16, "flux": torch.bfloat16, "wan": torch.bfloat16}
MODEL_NAMES = {"sd15": "SD1.5", "sdxl": "SDXL", "flux": "Flux.1-dev", "wan": "Wan 2.1 T2V 14B"}
FULL_DIT = {
    "flux": {"image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2, "vec_in_dim": 768,
             "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19,
             "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "qkv_bias": True,
             "guidance_embed": True},
    "wan": {"image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "text_len": 512, "in_dim": 16,
            "dim": 5120, "ffn_dim": 13824, "freq_dim": 256, "text_dim": 4096, "out_dim": 16, "num_heads": 40,
            "num_layers": 40, "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6},
}
FLUX_VAE = {"embed_dim": 16, "ddconfig": {"double_z": True, "z_channels": 16, "resolution": 256, "in_channels": 3,
                                          "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                                          "attn_resolutions": [], "dropout": 0.0}}
PREFIX = "model.diffusion_model."


def model_config(family: str):
    """A fresh host config of ``family`` at full size (the host's ``comfy.supported_models`` class)."""
    import comfy.supported_models

    from .models import FULL_UNET

    if family in FULL_UNET:
        return {"sd15": comfy.supported_models.SD15, "sdxl": comfy.supported_models.SDXL}[family](dict(FULL_UNET[family]))
    unet_config = dict(FULL_DIT[family])
    if family == "flux":
        import dataclasses

        import comfy.ldm.flux.model
        if "txt_ids_dims" in {field.name for field in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}:
            unet_config["txt_ids_dims"] = []  # newer hosts' FluxParams require it; Flux.1 has none
        return comfy.supported_models.Flux(unet_config)
    return comfy.supported_models.WAN21_T2V(unet_config)


def stored_shapes(family: str) -> dict[str, torch.Tensor]:
    """The diffusion model's keys as a checkpoint stores them: meta tensors of ``STORED_DTYPE``."""
    config = model_config(family)
    config.set_inference_dtype(STORED_DTYPE[family], None)
    model = config.get_model({}, device=torch.device("meta"))
    return {PREFIX + key: torch.empty(value.shape, dtype=STORED_DTYPE[family], device="meta")
            for key, value in model.diffusion_model.state_dict().items()}


def meta_family_model(family: str):
    """The ModelPatcher the plan route would build for a ``family`` file (meta weights)."""
    from ..sampling.memory import meta_model

    return meta_model(model_config(family), stored_shapes(family), PREFIX)


def meta_family_vae(family: str):
    """The family's VAE on the meta device (the host picks its type from the keys)."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.wan.vae import WanVAE

    from .models import FULL_VAE

    with torch.device("meta"):
        if family == "wan":
            shapes = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                            temperal_downsample=[False, True, True], dropout=0.0).state_dict()
        else:
            shapes = AutoencoderKL(**(FLUX_VAE if family == "flux" else FULL_VAE["params"])).state_dict()
        return comfy.sd.VAE(sd=shapes)


def estimates(family: str) -> list[dict]:
    """One row per side: the host's figures for a one-stage plan at that side (latent, sampling, weights, decode)."""
    from ..sampling.memory import stage_memory
    from ..sampling.plan import StageSize

    model, vae = meta_family_model(family), meta_family_vae(family)
    rows = []
    for side in SIDES:
        (stage,) = stage_memory(model, [StageSize(side, side)], LATENT_FACTOR, vae=vae, final_decode=True)
        rows.append({"family": family, "model": MODEL_NAMES[family], "side": side,
                     "dtype": str(model.model.get_dtype()).removeprefix("torch."),
                     "vae_dtype": str(vae.vae_dtype).removeprefix("torch."),
                     "sampling_bytes": stage.sampling, "weights_bytes": stage.weights,
                     "vae_decode_bytes": stage.vae_pass, "vae_weights_bytes": stage.vae_weights})
    return rows


def main() -> int:
    import comfy.model_management
    import comfyui_version

    device = comfy.model_management.get_torch_device()
    result = {"info": {"command": "python benchmarks/memory_plan.py", "device": str(device),
                       "comfyui": comfyui_version.__version__,  # the estimates are the host's formulas
                       "flash_attention_formula": bool(comfy.model_management.pytorch_attention_flash_attention()
                                                       or comfy.model_management.xformers_enabled()),
                       "torch": torch.__version__, "python": platform.python_version(),
                       "stored_dtype": {family: str(dtype).removeprefix("torch.")
                                        for family, dtype in STORED_DTYPE.items()}},
              "rows": [row for family in FAMILIES for row in estimates(family)]}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(RESULTS)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from _bootstrap import bootstrap

    bootstrap()
    from selfcascade.benchmarks.memory_plan import main as package_main  # relative imports need the package

    sys.exit(package_main())
