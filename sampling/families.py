"""Model-family facts in one table: native size, latent factor, size multiple, video or not.

Detected from the MODEL itself (its ``comfy.supported_models`` config class and latent format),
so fine-tuned community checkpoints of a family get the family's facts.
"""
from __future__ import annotations

from dataclasses import dataclass

from .plan import round_preferring_64


@dataclass(frozen=True)
class Family:
    name: str
    native_width: int
    native_height: int
    latent_factor: int = 8  # pixels per latent cell
    size_multiple: int = 8  # pixel sizes must be multiples of this (16 for 2x2-patch DiTs)
    video: bool = False
    unet: bool = False  # an openaimodel UNet: the upsampler adapters can be injected

    @property
    def native_area(self) -> int:
        return self.native_width * self.native_height


SD15 = Family("sd15", 512, 512, unet=True)
SD2 = Family("sd2", 512, 512, unet=True)
SD2_768 = Family("sd2-768", 768, 768, unet=True)
SDXL = Family("sdxl", 1024, 1024, unet=True)
SD3 = Family("sd3", 1024, 1024, size_multiple=16)
FLUX = Family("flux", 1024, 1024, size_multiple=16)
WAN = Family("wan", 832, 480, size_multiple=16, video=True)
DEMO = Family("selfcascade-demo", 32, 32, latent_factor=1, unet=True)  # the pack's pixel-space demo model (models/demo)
UNKNOWN_UNET = Family("unet", 512, 512, unet=True)
UNKNOWN = Family("unknown", 1024, 1024, size_multiple=16)

# config class name (checked along the MRO, so SSD1B is SDXL) -> family
_BY_CONFIG = {
    "SD15": SD15, "SD20": SD2, "SDXL": SDXL, "SDXLRefiner": SDXL, "SD3": SD3,
    "Flux": FLUX, "WAN21_T2V": WAN, "WAN22_T2V": WAN, "SelfCascadeDemo": DEMO,
}
_LATENT_FACTOR = {"Wan22": 16, "HunyuanImage21": 32, "HunyuanVideo15": 16}


def detect_family(model) -> Family:
    """Family of a ComfyUI MODEL (ModelPatcher)."""
    base_model = model.model
    config = base_model.model_config
    family = None
    for cls in type(config).__mro__:
        if cls.__name__ in _BY_CONFIG:
            family = _BY_CONFIG[cls.__name__]
            break
    if family is SD2 and base_model.model_type.name.startswith("V_PREDICTION"):
        family = SD2_768
    if family is None:
        is_unet = type(base_model.diffusion_model).__name__ == "UNetModel"
        family = UNKNOWN_UNET if is_unet else UNKNOWN
        latent_format = model.get_model_object("latent_format")
        if getattr(latent_format, "latent_dimensions", 2) == 3:
            family = Family(family.name, family.native_width, family.native_height,
                            size_multiple=family.size_multiple, video=True, unet=is_unet)
    factor = _LATENT_FACTOR.get(type(model.get_model_object("latent_format")).__name__, family.latent_factor)
    if factor != family.latent_factor:
        family = Family(family.name, family.native_width, family.native_height, latent_factor=factor,
                        size_multiple=max(factor * 2, family.size_multiple), video=family.video, unet=family.unet)
    return family


def native_size_for_aspect(family: Family, width: int, height: int) -> tuple[int, int]:
    """The family's native area at the aspect of ``width`` x ``height`` (sides prefer multiples of 64)."""
    aspect = width / height
    native_width = (family.native_area * aspect) ** 0.5
    return (round_preferring_64(native_width, family.size_multiple),
            round_preferring_64(native_width / aspect, family.size_multiple))
