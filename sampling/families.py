"""Model-family facts in one table: native size, pixels per latent cell, size multiple, UNet or not,
video frames per latent frame.

Keyed by the host's model config class (``comfy.supported_models``), so fine-tuned community
checkpoints of a family get the family's facts. Every config the host ships has an entry here or
a stated reason it cannot be planned (a test fails when the host adds one this table does not
know); a config from elsewhere gets the facts of its nearest listed ancestor, or the stated
fallback, and then the Family says what it assumed. Where the host's latent format states its
pixels per cell or frames per latent frame (ComfyUI 0.10 and later), the host's figure wins; a
connected VAE decides the latent factor over both.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from .plan import StageSize, round_preferring_64, round_to_multiple


class FamilyError(ValueError):
    """A model the cascade cannot plan (audio, 3-D); the message names it and what to use instead."""


@dataclass(frozen=True)
class Family:
    name: str
    native_width: int
    native_height: int
    latent_factor: int = 8  # pixels per latent cell
    size_multiple: int = 8  # pixel sizes must be multiples of this (16 for 2x2-patch DiTs)
    unet: bool = False  # an openaimodel UNet: the upsampler adapters can be injected
    frames_per_latent: int = 4  # video: frames per latent frame after the first (the VAE's temporal compression)
    assumed: str = ""  # empty for a listed family; else why its facts are the stated fallback

    @property
    def native_area(self) -> int:
        return self.native_width * self.native_height

    @property
    def known(self) -> bool:
        return not self.assumed

    def assumption(self) -> str:
        """What was guessed, for the run report ("" for a listed family)."""
        if self.known:
            return ""
        return (f"unknown family: assumed {self.latent_factor} px per latent cell, sizes in multiples of "
                f"{self.size_multiple} and a native size of {self.native_width}x{self.native_height} ({self.assumed})")

    def latent_frames(self, length: int) -> int:
        """Latent frames of a ``length``-frame video: the first frame alone, then one per ``frames_per_latent``
        (what the host's empty video latents give)."""
        return (length - 1) // self.frames_per_latent + 1

    def with_latent_factor(self, factor: int) -> Family:
        """The family seen through a VAE with ``factor`` pixels per cell (the size multiple keeps its cells)."""
        return replace(self, latent_factor=factor, size_multiple=self.size_multiple // self.latent_factor * factor)

    def fit(self, width: float, height: float) -> StageSize:
        """A requested pixel size as this family samples it: each side rounded to the size multiple,
        the rounding the planner gives targets."""
        return StageSize(round_to_multiple(width, self.size_multiple), round_to_multiple(height, self.size_multiple))

    def pixels_of(self, samples) -> StageSize:
        """The pixel size of a latent tensor (its last two dimensions are cells)."""
        return StageSize(samples.shape[-1] * self.latent_factor, samples.shape[-2] * self.latent_factor)


SD15 = Family("sd15", 512, 512, unet=True)
SD2 = Family("sd2", 512, 512, unet=True)
SD2_768 = Family("sd2-768", 768, 768, unet=True)  # SD2's v-prediction models (2.0-v, 2.1, unCLIP)
SDXL = Family("sdxl", 1024, 1024, unet=True)
ZERO123 = Family("zero123", 256, 256, unet=True)
SD_X4_UPSCALER = Family("sd-x4-upscaler", 512, 512, latent_factor=4, size_multiple=4, unet=True)
SVD = Family("svd", 1024, 576, unet=True)
SV3D = Family("sv3d", 576, 576, unet=True)
SD3 = Family("sd3", 1024, 1024, size_multiple=16)
AURAFLOW = Family("auraflow", 1024, 1024, size_multiple=16)
PIXART = Family("pixart", 1024, 1024, size_multiple=16)
HUNYUAN_DIT = Family("hunyuan-dit", 1024, 1024, size_multiple=16)
FLUX = Family("flux", 1024, 1024, size_multiple=16)
FLUX2 = Family("flux2", 1024, 1024, latent_factor=16, size_multiple=16)
CHROMA = Family("chroma", 1024, 1024, size_multiple=16)
CHROMA_RADIANCE = Family("chroma-radiance", 1024, 1024, latent_factor=1, size_multiple=16)  # pixel space, 16 px patches
HIDREAM = Family("hidream", 1024, 1024, size_multiple=16)
LUMINA2 = Family("lumina2", 1024, 1024, size_multiple=16)
Z_IMAGE = Family("z-image", 1024, 1024, size_multiple=16)
OMNIGEN2 = Family("omnigen2", 1024, 1024, size_multiple=16)
QWEN_IMAGE = Family("qwen-image", 1328, 1328, size_multiple=16)
HUNYUAN_IMAGE21 = Family("hunyuan-image-2.1", 2048, 2048, latent_factor=32, size_multiple=32)
HUNYUAN_IMAGE21_REFINER = Family("hunyuan-image-2.1-refiner", 2048, 2048, latent_factor=16, size_multiple=16)
COSMOS_PREDICT2_IMAGE = Family("cosmos-predict2", 1024, 1024, size_multiple=16)
WAN = Family("wan", 832, 480, size_multiple=16)
WAN22_5B = Family("wan2.2-5b", 1280, 704, latent_factor=16, size_multiple=32)
MOCHI = Family("mochi", 848, 480, size_multiple=16, frames_per_latent=6)
LTXV = Family("ltxv", 768, 512, latent_factor=32, size_multiple=32, frames_per_latent=8)
HUNYUAN_VIDEO = Family("hunyuan-video", 1280, 720, size_multiple=16)
HUNYUAN_VIDEO15 = Family("hunyuan-video-1.5", 1280, 720, latent_factor=16, size_multiple=16)
COSMOS_VIDEO = Family("cosmos", 1280, 704, size_multiple=16, frames_per_latent=8)
COSMOS_PREDICT2_VIDEO = Family("cosmos-predict2-video", 1280, 704, size_multiple=16)  # the Wan 2.1 VAE: 4 frames
# ComfyUI 0.33's additions; native sizes are the models' published defaults
LONGCAT_IMAGE = Family("longcat-image", 1024, 1024, size_multiple=16)
KANDINSKY5_IMAGE = Family("kandinsky5-image", 1024, 1024, size_multiple=16)
KANDINSKY5_VIDEO = Family("kandinsky5", 768, 512, size_multiple=16)  # the HunyuanVideo VAE: 4 frames
FLUX2_VAE_IMAGE = {name: Family(name, 1024, 1024, latent_factor=16, size_multiple=16)
                   for name in ("mageflow", "ideogram4", "ernie-image")}
LENS = Family("lens", 1440, 1440, latent_factor=16, size_multiple=16)  # the host's shift comment: 1440x1440
WAN_VAE_IMAGE = {name: Family(name, 1024, 1024, size_multiple=16) for name in ("joyimage", "krea2", "anima")}
Z_IMAGE_PIXEL = Family("z-image-pixel", 1024, 1024, latent_factor=1, size_multiple=16)  # pixel space
PIXELDIT = Family("pixeldit", 1024, 1024, latent_factor=1, size_multiple=16)  # pixel space, 16 px patches
HIDREAM_O1 = Family("hidream-o1", 1024, 1024, latent_factor=1, size_multiple=32)  # pixel space, 32 px patches
COGVIDEOX = Family("cogvideox", 720, 480, size_multiple=16)
DEMO = Family("selfcascade-demo", 32, 32, latent_factor=1, unet=True)  # the pack's pixel-space demo model (models/demo)
# the pack's flow demo model (models/demo/flow_demo_model.py): a Flux-style transformer on 4x4-pixel patches
DEMO_FLOW = Family("selfcascade-demo-flow", 32, 32, latent_factor=1, size_multiple=4)

# stated fallbacks for a config no entry (nor any ancestor's) names
UNKNOWN_UNET = Family("unet", 512, 512, unet=True)
UNKNOWN = Family("unknown", 1024, 1024, size_multiple=16)
# Pivot Upscale without a model: a plain SD-style latent
NO_MODEL = Family("unknown", 512, 512, assumed="no model connected")

# config class name -> family; SD2's eps models are 512 px, its v-prediction models 768 px (SD2_768)
BY_CONFIG = {
    "SD15": SD15, "SD15_instructpix2pix": SD15,
    "SD20": SD2, "SD21UnclipL": SD2, "SD21UnclipH": SD2, "LotusD": SD2,
    "SDXL": SDXL, "SDXLRefiner": SDXL, "SDXL_instructpix2pix": SDXL, "SSD1B": SDXL, "KOALA_700M": SDXL,
    "KOALA_1B": SDXL, "Segmind_Vega": SDXL,
    "Stable_Zero123": ZERO123, "SD_X4Upscaler": SD_X4_UPSCALER,
    "SVD_img2vid": SVD, "SV3D_u": SV3D, "SV3D_p": SV3D,
    "SD3": SD3, "AuraFlow": AURAFLOW, "PixArtAlpha": PIXART, "PixArtSigma": PIXART,
    "HunyuanDiT": HUNYUAN_DIT, "HunyuanDiT1": HUNYUAN_DIT,
    "Flux": FLUX, "FluxSchnell": FLUX, "FluxInpaint": FLUX, "Flux2": FLUX2,
    "Chroma": CHROMA, "ChromaRadiance": CHROMA_RADIANCE, "HiDream": HIDREAM,
    "Lumina2": LUMINA2, "ZImage": Z_IMAGE, "Omnigen2": OMNIGEN2, "QwenImage": QWEN_IMAGE,
    "HunyuanImage21": HUNYUAN_IMAGE21, "HunyuanImage21Refiner": HUNYUAN_IMAGE21_REFINER,
    "CosmosT2IPredict2": COSMOS_PREDICT2_IMAGE, "CosmosI2VPredict2": COSMOS_PREDICT2_VIDEO,
    "WAN21_T2V": WAN, "WAN21_I2V": WAN, "WAN21_FunControl2V": WAN, "WAN21_Vace": WAN, "WAN21_Camera": WAN,
    "WAN22_Camera": WAN, "WAN22_S2V": WAN, "WAN21_HuMo": WAN, "WAN22_Animate": WAN, "WAN22_T2V": WAN22_5B,
    "GenmoMochi": MOCHI, "LTXV": LTXV,
    "HunyuanVideo": HUNYUAN_VIDEO, "HunyuanVideoI2V": HUNYUAN_VIDEO, "HunyuanVideoSkyreelsI2V": HUNYUAN_VIDEO,
    "HunyuanVideo15": HUNYUAN_VIDEO15, "HunyuanVideo15_SR_Distilled": HUNYUAN_VIDEO15,
    "CosmosT2V": COSMOS_VIDEO, "CosmosI2V": COSMOS_VIDEO,
    "SelfCascadeDemo": DEMO, "SelfCascadeDemoFlow": DEMO_FLOW,
    "LongCatImage": LONGCAT_IMAGE, "Kandinsky5Image": KANDINSKY5_IMAGE, "Kandinsky5": KANDINSKY5_VIDEO,
    "MageFlow": FLUX2_VAE_IMAGE["mageflow"], "Ideogram4": FLUX2_VAE_IMAGE["ideogram4"],
    "ErnieImage": FLUX2_VAE_IMAGE["ernie-image"], "Lens": LENS, "JoyImage": WAN_VAE_IMAGE["joyimage"],
    "Krea2": WAN_VAE_IMAGE["krea2"], "Anima": WAN_VAE_IMAGE["anima"], "Boogu": OMNIGEN2,
    "ZImagePixelSpace": Z_IMAGE_PIXEL, "PixelDiTT2I": PIXELDIT, "PiD": PIXELDIT, "HiDreamO1": HIDREAM_O1,
    "WAN21_CausalAR_T2V": WAN, "WAN_Animate2": WAN, "WAN21_FlowRVS": WAN, "WAN21_SCAIL": WAN, "WAN21_SCAIL2": WAN,
    "WAN22_WanDancer": WAN, "CogVideoX_T2V": COGVIDEOX, "CogVideoX_I2V": COGVIDEOX, "CogVideoX_Inpaint": COGVIDEOX,
}
_V_PREDICTION_FAMILY = {SD2: SD2_768}
# config class name -> why a cascade of image stages cannot be planned for it
NOT_PLANNABLE = {
    "StableAudio": "an audio model", "ACEStep": "an audio model",
    "Hunyuan3Dv2": "a 3-D shape model", "Hunyuan3Dv2mini": "a 3-D shape model", "Hunyuan3Dv2_1": "a 3-D shape model",
    "Stable_Cascade_C": "Stable Cascade's stage C, which samples a compressed semantic latent, not pixels",
    "Stable_Cascade_B": "Stable Cascade's stage B, which decodes stage C rather than sampling from a prompt",
    "StableAudio3": "an audio model", "ACEStep15": "an audio model", "MiniMaxMusic3": "an audio model",
    "LTXAV": "an audio-video model (its latent carries an audio track the stages cannot upscale)",
    "MiniMaxH3": "an audio-video model (its latent carries an audio track the stages cannot upscale)",
    "TripoSplat": "a 3-D model", "Trellis2": "a 3-D model",
    "SeedVR2": "a video restoration model that upscales its input itself",
    "RT_DETR_v4": "a detection model", "SAM3": "a segmentation model", "SAM31": "a segmentation model",
    "DepthAnything3": "a depth model",
}


def _stated(latent_format, name: str):
    """``name`` where ``latent_format`` (an instance or a class) or a class above it sets it, below the
    host's ``LatentFormat`` base, whose value is a default rather than a fact about the family."""
    if not isinstance(latent_format, type) and name in vars(latent_format):
        return vars(latent_format)[name]
    for cls in (latent_format if isinstance(latent_format, type) else type(latent_format)).__mro__:
        if cls.__name__ == "LatentFormat" and cls.__module__ == "comfy.latent_formats":
            return None
        if name in vars(cls):
            return vars(cls)[name]
    return None


def stated_ratios(latent_format) -> tuple[Optional[int], Optional[int]]:
    """(pixels per latent cell, frames per latent frame) as the host's latent format states them.

    ComfyUI 0.10 and later set ``spacial_downscale_ratio`` / ``temporal_downscale_ratio`` on the latent
    formats that differ from the base's 8 px and 1 frame; older hosts state neither: None then. The
    temporal ratio counts only for video (3-D) latents.
    """
    spatial = _stated(latent_format, "spacial_downscale_ratio")
    temporal = _stated(latent_format, "temporal_downscale_ratio")
    video = getattr(latent_format, "latent_dimensions", 2) == 3
    return (spatial if isinstance(spatial, int) and spatial >= 1 else None,
            temporal if video and isinstance(temporal, int) and temporal >= 1 else None)


def with_stated_ratios(family: Family, latent_format) -> Family:
    """``family`` with the ratios the host's latent format states, where it states them (the host wins)."""
    spatial, temporal = stated_ratios(latent_format) if latent_format is not None else (None, None)
    if spatial is not None and spatial != family.latent_factor:
        family = family.with_latent_factor(spatial)
    if temporal is not None and temporal != family.frames_per_latent:
        family = replace(family, frames_per_latent=temporal)
    return family


def family_of_config(config_class: type, v_prediction: bool = False, unet: bool = False) -> Family:
    """The family of a ``comfy.supported_models`` config class (or a subclass from elsewhere), with the
    ratios its latent format states.

    ``unet`` picks the stated fallback for a config neither listed nor derived from a listed one.
    Raises ``FamilyError`` for models that are not images or videos.
    """
    latent_format = getattr(config_class, "latent_format", None)
    for cls in config_class.__mro__:
        if cls.__name__ in NOT_PLANNABLE:
            raise FamilyError(f"{config_class.__name__} is {NOT_PLANNABLE[cls.__name__]}: Self-Cascade plans image "
                              "and video models; sample it with the host's own nodes.")
        family = BY_CONFIG.get(cls.__name__)
        if family is not None:
            return with_stated_ratios(_V_PREDICTION_FAMILY.get(family, family) if v_prediction else family,
                                      latent_format)
    return with_stated_ratios(
        fallback_family(unet, f"model config {config_class.__name__} is not in Self-Cascade's family table"),
        latent_format)


def fallback_family(unet: bool, why: str) -> Family:
    """The stated fallback for a model whose family is not known, saying ``why``."""
    return replace(UNKNOWN_UNET if unet else UNKNOWN, assumed=why)


def vae_latent_factor(vae) -> int:
    """Pixels per latent cell of a ComfyUI VAE (its spatial compression)."""
    factor = vae.spacial_compression_encode()
    if not isinstance(factor, int) or factor < 1:
        raise FamilyError(f"the VAE compresses {factor!r} samples per latent cell: not an image VAE; connect the "
                          "model's image or video VAE, or none.")
    return factor


def detect_family(model, vae=None) -> Family:
    """Family of a ComfyUI MODEL (ModelPatcher); with a VAE, its latent factor is the VAE's."""
    base_model = model.model
    family = family_of_config(type(base_model.model_config), base_model.model_type.name.startswith("V_PREDICTION"),
                              type(base_model.diffusion_model).__name__ == "UNetModel")
    return with_vae(with_stated_ratios(family, model.get_model_object("latent_format")), vae)


def with_vae(family: Family, vae=None) -> Family:
    """``family`` with the latent factor of ``vae`` when one is connected."""
    return family if vae is None else family.with_latent_factor(vae_latent_factor(vae))


def native_size_for_aspect(family: Family, width: int, height: int) -> tuple[int, int]:
    """The family's native area at the aspect of ``width`` x ``height`` (sides prefer multiples of 64)."""
    aspect = width / height
    native_width = (family.native_area * aspect) ** 0.5
    return (round_preferring_64(native_width, family.size_multiple),
            round_preferring_64(native_width / aspect, family.size_multiple))


def pivot_family(model: Optional[object] = None, vae=None) -> Family:
    """The facts a Pivot Upscale sizes by: the model's family, else an SD-style latent; the VAE's factor wins."""
    return detect_family(model, vae) if model is not None else with_vae(NO_MODEL, vae)
