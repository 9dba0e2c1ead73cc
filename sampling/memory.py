"""Memory of each cascade stage: what the host itself estimates before the run, and the peak measured in it.

Estimate. A stage needs, by the host's own functions for the model it will sample with:

- sampling: ``comfy.sampler_helpers.estimate_memory`` for the stage's latent (the figure its
  ``prepare_sampling`` reserves before loading the model: ``model.memory_required`` at twice the batch,
  as CFG runs the positive and negative prompts together; conditioning shapes are not known before the
  run and are left out, as they are for the host's image models);
- weights: the diffusion model's size (``ModelPatcher.model_size``: ``module_size`` of its parameters,
  meta tensors count alike);
- VAE passes the node does or the graph does right after it: the VAE's own ``memory_used_decode`` /
  ``memory_used_encode`` for the stage's shape, plus the VAE's weights. The host loads the VAE for a
  pass and may unload the diffusion model for it, so a stage's need is the larger of the two.

Against a device's free memory a stage ``fits``; ``offloads`` when only the activations fit (the host
then loads part of the weights and runs slower); or will not fit when the host's activation estimate
alone exceeds it. The host's figures are its own planning numbers (it calls them rough), not a
promise; the run report's measured peaks show what a run really used.

Measured. ``PeakMeter`` reads the peak of a region: the CUDA caching allocator's peak allocation on a
GPU (``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``), the growth of the process's
peak resident set on a Linux CPU (``VmHWM`` after a reset through ``/proc/self/clear_refs``). Elsewhere
it says it cannot measure instead of guessing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.sd
import comfy.utils

from .plan import StageSize

MIB, GIB = 1 << 20, 1 << 30
_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")
TILED_DECODE_HINT = "VAE Decode (Tiled)"


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.2f} GiB"


# ---- the host's estimates ----------------------------------------------------------------------------

def latent_shape(latent_format, latent_factor: int, size: StageSize, batch: int = 1, frames: int = 1) -> tuple[int, ...]:
    """The latent a stage of ``size`` pixels samples: (batch, channels[, frames], height, width) in cells."""
    spatial = (size.height // latent_factor, size.width // latent_factor)
    if getattr(latent_format, "latent_dimensions", 2) == 3:
        return (batch, latent_format.latent_channels, frames, *spatial)
    return (batch, latent_format.latent_channels, *spatial)


def sampling_bytes(model, shape: Sequence[int]) -> int:
    """The host's estimate for sampling a latent of ``shape`` with ``model`` (a ModelPatcher), CFG included."""
    host_estimate = getattr(comfy.sampler_helpers, "estimate_memory", None)
    if host_estimate is not None:
        return int(host_estimate(model, tuple(shape), {})[0])
    return int(model.model.memory_required([shape[0] * 2, *shape[1:]]))  # older hosts: the same formula inline


def weights_bytes(model) -> int:
    """The model's weights (a ModelPatcher; meta-device parameters are counted by size as real ones)."""
    return int(model.model_size())


def pixel_shape(vae, size: StageSize, frames: int = 1) -> tuple[int, ...]:
    """The pixel tensor's shape as ``VAE.encode`` hands its memory estimate."""
    if vae.latent_dim == 3:
        return (frames, 3, 1, size.height, size.width) if vae.not_video else (1, 3, frames, size.height, size.width)
    return frames, 3, size.height, size.width


def decode_bytes(vae, shape: Sequence[int]) -> int:
    return int(vae.memory_used_decode(tuple(shape), vae.vae_dtype))


def encode_bytes(vae, size: StageSize, frames: int = 1) -> int:
    return int(vae.memory_used_encode(pixel_shape(vae, size, frames), vae.vae_dtype))


@dataclass(frozen=True)
class StageMemory:
    """One stage's memory by the host's estimates (bytes)."""

    sampling: int
    weights: int
    vae_pass: int = 0  # the largest VAE pass of this stage (0: none)
    vae_weights: int = 0
    vae_what: str = ""  # every VAE pass of the stage, in words
    vae_fix: str = ""  # what makes the largest pass smaller

    @property
    def model_total(self) -> int:
        return self.sampling + self.weights

    @property
    def vae_total(self) -> int:
        return self.vae_pass + self.vae_weights if self.vae_pass else 0

    @property
    def peak(self) -> int:
        return max(self.model_total, self.vae_total)

    def verdict(self, free: int) -> str:
        """``fits``, ``offloads`` (activations fit, part of the weights stays off the device), ``no``."""
        if self.sampling > free or self.vae_pass > free:
            return "no"
        return "fits" if self.peak <= free else "offloads"

    def advice(self, free: int) -> str:
        """What the verdict means for this stage and what to change; empty when it fits."""
        verdict = self.verdict(free)
        if verdict == "fits":
            return ""
        if verdict == "offloads":
            return (f"needs {gib(self.peak)} with the weights, {gib(free)} free: ComfyUI keeps part of the weights "
                    "off the device (slower)")
        causes = []
        if self.sampling > free:
            causes.append(f"sampling needs {gib(self.sampling)} by ComfyUI's estimate")
        if self.vae_pass > free:
            causes.append(f"a VAE pass ({self.vae_what}) needs {gib(self.vae_pass)} (ComfyUI retries it tiled after "
                          f"running out of memory: {self.vae_fix})")
        return f"{'; '.join(causes)}; {gib(free)} free: choose a smaller target or fewer stages"

    def as_dict(self, free: int) -> dict:
        return {"sampling": self.sampling, "weights": self.weights, "vae": self.vae_pass,
                "vae_weights": self.vae_weights, "vae_passes": self.vae_what, "peak": self.peak,
                "fits": self.verdict(free), "advice": self.advice(free)}


def stage_memory(model, stages: Sequence[StageSize], latent_factor: int, batch: int = 1, frames: int = 1, vae=None,
                 pixel_pivots: bool = False, encode_input: bool = False, final_decode: bool = False,
                 decode_fix: Optional[str] = None) -> list[StageMemory]:
    """Each stage's ``StageMemory`` for ``model`` (a ModelPatcher, meta-device or loaded).

    VAE passes (``vae`` given): ``encode_input``: stage 0 encodes its image (Self-Cascade Upscale);
    ``pixel_pivots``: each later stage decodes the previous stage's latent and encodes its own size;
    ``final_decode``: the last stage's latent is decoded (VAE Decode after the node; ``decode_fix`` says how
    to shrink it, by default the tiled decode node). The host loads the VAE per pass, so the largest pass of
    a stage counts, not their sum.
    """
    latent_format = model.get_model_object("latent_format")
    weights = weights_bytes(model)
    vae_weights = weights_bytes(vae.patcher) if vae is not None else 0
    shapes = [latent_shape(latent_format, latent_factor, size, batch, frames) for size in stages]
    out = []
    for index, size in enumerate(stages):
        passes: list[tuple[str, int, str]] = []  # (words, bytes, the fix)
        if vae is not None:
            if index == 0 and encode_input:
                passes.append((f"encode {size}", encode_bytes(vae, size, batch * frames), "set tile = always"))
            if index > 0 and pixel_pivots:
                pivot_fix = "leave the vae input unconnected (latent pivots)"
                passes.append((f"pivot decode {stages[index - 1]}", decode_bytes(vae, shapes[index - 1]), pivot_fix))
                passes.append((f"pivot encode {size}", encode_bytes(vae, size, batch * frames), pivot_fix))
            if index == len(stages) - 1 and final_decode:
                passes.append((f"decode {size}", decode_bytes(vae, shapes[index]),
                               decode_fix or f"use {TILED_DECODE_HINT}"))
        largest = max(passes, key=lambda item: item[1], default=("", 0, ""))
        out.append(StageMemory(sampling_bytes(model, shapes[index]), weights, largest[1], vae_weights if passes else 0,
                               ", ".join(words for words, _, _ in passes), largest[2]))
    return out


def device_free_bytes(device: Optional[torch.device] = None) -> int:
    """Memory a run could have on ``device`` (the host's sampling device): free now plus what the host's
    loaded models hold, which it unloads to make room."""
    device = device or comfy.model_management.get_torch_device()
    held = 0
    for loaded in list(comfy.model_management.current_loaded_models):
        if getattr(loaded, "device", None) == device and hasattr(loaded, "model_loaded_memory"):
            held += loaded.model_loaded_memory()
    return int(comfy.model_management.get_free_memory(device)) + held


# ---- a model to ask, without its weights ---------------------------------------------------------------

def meta_model(model_config, shapes: Mapping[str, torch.Tensor], prefix: str, tensors: Optional[Mapping] = None):
    """A ModelPatcher around the host's model of ``model_config`` with meta-device weights: sized, and at the
    dtype, as the host's checkpoint loader would load a file of ``shapes`` (meta tensors) on its device.
    ``tensors``: the file's tensors where a config's ``model_type`` reads a few (else ``shapes``)."""
    device = comfy.model_management.get_torch_device()
    parameters = comfy.utils.calculate_parameters(shapes, prefix)
    weight_dtype = None if getattr(model_config, "scaled_fp8", None) is not None else \
        comfy.utils.weight_dtype(shapes, prefix)
    supported = list(model_config.supported_inference_dtypes)
    dtype = comfy.model_management.unet_dtype(model_params=parameters, supported_dtypes=supported,
                                              weight_dtype=weight_dtype)
    manual_cast = comfy.model_management.unet_manual_cast(dtype, device, supported)
    model_config.set_inference_dtype(dtype, manual_cast)
    model = model_config.get_model(tensors if tensors is not None else shapes, prefix, device=torch.device("meta"))
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())


def meta_vae(model_config, shapes: Mapping[str, torch.Tensor]):
    """The host's VAE of a checkpoint's ``first_stage_model`` (or its config's prefix) on the meta device; None
    when the file has none (a diffusion model alone)."""
    vae_shapes = comfy.utils.state_dict_prefix_replace(dict(shapes), {key: "" for key in model_config.vae_key_prefix},
                                                       filter_keys=True)
    if not vae_shapes:
        return None
    return meta_vae_file(model_config.process_vae_state_dict(vae_shapes))


def meta_vae_file(shapes: Mapping[str, torch.Tensor], metadata: Optional[dict] = None):
    """The host's VAE of a VAE file's tensors (meta tensors), on the meta device, as its VAE Loader builds it."""
    with torch.device("meta"):
        return comfy.sd.VAE(sd=dict(shapes), metadata=metadata)


# ---- measured peaks ------------------------------------------------------------------------------------

def _status_bytes(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE).group(1)) * 1024


def _rss_measurable() -> bool:
    try:
        _status_bytes("VmHWM")
        return _CLEAR_REFS.exists()
    except (OSError, AttributeError):
        return False


class PeakMeter:
    """The peak memory of each stage on the device it runs on (see the module's docstring)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda" and torch.cuda.is_available()
        self.device = device
        self.available = self.cuda or _rss_measurable()
        self._start = 0

    @property
    def unavailable_note(self) -> str:
        return ("" if self.available else
                "peak memory per stage is not measured here (no CUDA device and no Linux /proc to read the "
                "process's peak resident memory from)")

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.available:
            try:
                _CLEAR_REFS.write_text("5")  # Linux: VmHWM restarts from VmRSS
                self._start = _status_bytes("VmRSS")
            except OSError:
                self.available = False

    def peak(self) -> Optional[int]:
        """Bytes since ``start``: the CUDA peak allocation (weights on the device included), or the growth of the
        process's peak RSS (approximate: allocator caches and other threads' memory count too); None: not measured."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        if not self.available:
            return None
        return max(0, _status_bytes("VmHWM") - self._start)

    def words(self, peak: Optional[int]) -> str:
        """The peak for a report line (no commas: report readers split on them)."""
        if peak is None:
            return ""
        if self.cuda:
            return f"peak {gib(peak)} CUDA allocated"
        return f"peak RSS +{peak / MIB:.0f} MiB"

