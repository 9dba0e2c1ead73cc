"""What is timed: the Self-Cascade KSampler and the graphs it is compared with, called as ComfyUI calls them.

Every arm takes the (probed) MODEL and returns the target latent. The core-node graph is the
cascade built by hand from the host's own nodes (KSampler, LatentUpscale, KSamplerSelect,
SamplerCustom with Pivot Reschedule sigmas): the same computation as the node, bit for bit
(tests/integration/test_cascade_inprocess.py), so the difference between the two is the node's
overhead. Direct sampling and the two-pass hires fix are the baselines users would otherwise run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import comfy.model_management
import nodes as core
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustom

from ..nodes.cascade_nodes import PivotReschedule, SelfCascadeKSampler
from .models import ModelSet

HIRES_DENOISE = 0.5
UPSCALE_METHOD = "bilinear"  # the paper's pivot upsampling, and the node's default


@dataclass(frozen=True)
class Workload:
    """One generation: square sizes in pixels from the base through every cascade stage to the target."""

    sizes: tuple[int, ...]
    steps: int
    cfg: float = 7.5  # the official SDXL scripts' CFG; any value above 1 costs the same (cond + uncond)
    sampler: str = "euler"
    scheduler: str = "normal"
    k: float = 0.7  # K
    seed: int = 0

    @property
    def base(self) -> int:
        return self.sizes[0]

    @property
    def target(self) -> int:
        return self.sizes[-1]

    def label(self) -> str:
        return "→".join(map(str, self.sizes))

    def summary(self) -> str:
        """The sampling settings, for the report."""
        return (f"{self.sampler}/{self.scheduler}, {self.steps} base steps, CFG {self.cfg:g}, K {self.k:g}, "
                f"{UPSCALE_METHOD} pivot")


Arm = Callable[[object, ModelSet, Workload], torch.Tensor]  # (probed MODEL, models, workload) -> target latent


def empty_latent(size: int) -> dict:
    (latent,) = core.EmptyLatentImage().generate(size, size, 1)
    return latent


def cascade_node(model, models: ModelSet, work: Workload, adapter=None) -> torch.Tensor:
    """The Self-Cascade KSampler node, tuning-free or with an upsampler adapter."""
    output = SelfCascadeKSampler.execute(
        model=model, seed=work.seed, steps=work.steps, cfg=work.cfg, sampler_name=work.sampler, scheduler=work.scheduler,
        positive=models.positive, negative=models.negative, latent_image=empty_latent(work.base), scale_by=0.0,
        target_width=work.target, target_height=work.target, k=work.k, later_k=0.0,
        upscale_method=UPSCALE_METHOD, stage_steps=0, denoise=1.0, upsampler_adapter=adapter, adapter_strength=1.0)
    return output.result[0]["samples"]


def with_adapter(adapter) -> Arm:
    def arm(model, models: ModelSet, work: Workload) -> torch.Tensor:
        return cascade_node(model, models, work, adapter)
    return arm


def core_graph(model, models: ModelSet, work: Workload) -> torch.Tensor:
    """KSampler at the base, then per stage LatentUpscale and SamplerCustom on Pivot Reschedule sigmas."""
    (current,) = core.KSampler().sample(model, work.seed, work.steps, work.cfg, work.sampler, work.scheduler,
                                        models.positive, models.negative, empty_latent(work.base), denoise=1.0)
    sigmas = PivotReschedule.execute(model, work.scheduler, work.steps, work.k, 0).result[0]
    sampler = KSamplerSelect.execute(work.sampler).result[0]
    for stage, size in enumerate(work.sizes[1:], start=1):
        (current,) = core.LatentUpscale().upscale(current, UPSCALE_METHOD, size, size, "disabled")
        current = SamplerCustom.execute(model, True, work.seed + stage, work.cfg, models.positive, models.negative,
                                        sampler, sigmas, current).result[0]
    return current["samples"]


def direct(model, models: ModelSet, work: Workload) -> torch.Tensor:
    """KSampler straight at the target size, same steps."""
    (latent,) = core.KSampler().sample(model, work.seed, work.steps, work.cfg, work.sampler, work.scheduler,
                                       models.positive, models.negative, empty_latent(work.target), denoise=1.0)
    return latent["samples"]


def hires_fix(model, models: ModelSet, work: Workload) -> torch.Tensor:
    """Two passes whatever the stage count: KSampler at the base, LatentUpscale to the target, KSampler at denoise 0.5."""
    (base,) = core.KSampler().sample(model, work.seed, work.steps, work.cfg, work.sampler, work.scheduler,
                                     models.positive, models.negative, empty_latent(work.base), denoise=1.0)
    (upscaled,) = core.LatentUpscale().upscale(base, UPSCALE_METHOD, work.target, work.target, "disabled")
    (latent,) = core.KSampler().sample(model, work.seed + 1, work.steps, work.cfg, work.sampler, work.scheduler,
                                       models.positive, models.negative, upscaled, denoise=HIRES_DENOISE)
    return latent["samples"]


def decode(vae, samples: torch.Tensor, tiled: bool) -> torch.Tensor:
    """VAE Decode, or VAE Decode (Tiled) with the host's default tiles where a whole decode would not fit."""
    return vae.decode_tiled(samples) if tiled else vae.decode(samples)


def needs_tiled_decode(vae, target: int, device: torch.device) -> bool:
    """The host's own estimate of a whole decode against the device's free memory."""
    factor = vae.spacial_compression_decode()
    estimate = vae.memory_used_decode((1, 4, target // factor, target // factor), vae.vae_dtype)
    return estimate > comfy.model_management.get_free_memory(device)


def adapter_arm_name(variant: str) -> str:
    return f"cascade + {variant} adapter"


TUNING_FREE = "Self-Cascade KSampler"
CORE_GRAPH = "core-node graph"
DIRECT = "direct at target"
HIRES_FIX = "hires fix (2 pass)"
ARMS: dict[str, Arm] = {TUNING_FREE: cascade_node, CORE_GRAPH: core_graph, DIRECT: direct, HIRES_FIX: hires_fix}
DECODED = (TUNING_FREE, DIRECT, HIRES_FIX)  # the arms compared end to end, VAE decode included
