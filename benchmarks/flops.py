"""Floating-point work of full-size UNet calls, counted on the meta device: what a compute-bound GPU pays.

``torch.utils.flop_counter`` counts matrix products, convolutions and attention (routed, for the
count only, to the host's PyTorch-SDPA attention through ``optimized_attention_override``); it
does not count element-wise work (norms, activations, the adapter's interpolations). Meta tensors
carry shapes and no data, so a 2.6B-parameter SDXL call is counted in seconds on any CPU. These are
counts, not timings: the ratio a GPU reaches when it runs every call at the same efficiency.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

import comfy.model_patcher
from comfy.ldm.modules.attention import attention_pytorch

from ..adapters.injection import apply_upsampler_adapter, direct_call_options
from ..adapters.modules import new_adapter
from ..sampling.schedule import pivot_sigmas
from .models import FULL_UNET, POOLED_WIDTH, TOKENS, full_unet
from .workloads import Workload

META = torch.device("meta")
VARIANTS_BY_FAMILY = {"sd15": ("lite",), "sdxl": ("lite", "official-sdxl")}


@dataclass(frozen=True)
class FlopCount:
    family: str
    sizes: tuple[int, ...]
    steps: int
    stage_steps: int  # steps of each high-resolution stage (below K)
    unet_flops: dict[int, int]  # size in px -> one UNet call with CFG (batch 2), tuning-free
    adapter_ratio: dict[str, float]  # variant -> (call at the target with the adapter) / (call without)
    cascade_over_direct: float  # all UNet calls of the cascade / of direct sampling at the target
    cascade_over_hires: float  # ... / of the two-pass hires fix


def _sdpa_attention(func, *args, **kwargs):
    return attention_pytorch(*args, **kwargs)


def unet_call_flops(model, family: str, size: int) -> int:
    """One call of ``model``'s UNet (its patches and wrappers included) on a CFG batch at ``size`` px."""
    return sum(_unet_call_counts(model, family, size).values())


def _unet_call_counts(model, family: str, size: int) -> dict[str, int]:
    """Operations of one CFG-batch UNet call at ``size`` px by aten operator name."""
    options = direct_call_options(model)
    options["optimized_attention_override"] = _sdpa_attention
    dtype = model.model.get_dtype()
    latent = torch.empty((2, 4, size // 8, size // 8), device=META, dtype=dtype)
    context = torch.empty((2, TOKENS, FULL_UNET[family]["context_dim"]), device=META, dtype=dtype)
    y = torch.empty((2, FULL_UNET[family]["adm_in_channels"]), device=META, dtype=dtype) if POOLED_WIDTH[family] else None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.model.diffusion_model(latent, torch.full((2,), 500.0, device=META), context, y, transformer_options=options)
    return {str(operator): count for operator, count in counter.get_flop_counts()["Global"].items()}


def operation_shares(family: str, size: int) -> dict[str, float]:
    """Shares of one full-size tuning-free call at ``size`` px: attention (the QK^T and AV batched products),
    convolution, and linear layers (projections and feed-forwards)."""
    model = comfy.model_patcher.ModelPatcher(full_unet(family, torch.float16, META), load_device=META, offload_device=META)
    counts = _unet_call_counts(model, family, size)
    groups = {"attention": ("aten.bmm", "aten.baddbmm"), "convolution": ("aten.convolution",),
              "linear": ("aten.mm", "aten.addmm")}
    total = sum(counts.values())
    shares = {group: sum(counts.get(name, 0) for name in names) / total for group, names in groups.items()}
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise RuntimeError(f"operators outside the attention/convolution/linear groups: {sorted(counts)}")
    return shares


def count_flops(family: str, work: Workload) -> FlopCount:
    """Per-call counts at every size of ``work`` and, at the target, with each adapter variant."""
    model = comfy.model_patcher.ModelPatcher(full_unet(family, torch.float16, META), load_device=META, offload_device=META)
    flops = {size: unet_call_flops(model, family, size) for size in dict.fromkeys(work.sizes)}
    ratios = {}
    for variant in VARIANTS_BY_FAMILY[family]:
        adapter = new_adapter(model, variant)
        adapter.module.to(META)
        pivot = torch.zeros((1, 4, work.sizes[-2] // 8, work.sizes[-2] // 8))
        ratios[variant] = unet_call_flops(apply_upsampler_adapter(model, adapter, pivot), family, work.target) / flops[work.target]
    stage_steps = len(pivot_sigmas(model.get_model_object("model_sampling"), work.scheduler, work.steps, work.k)) - 1
    cascade = work.steps * flops[work.base] + stage_steps * sum(flops[size] for size in work.sizes[1:])
    direct = work.steps * flops[work.target]
    # the second pass, KSampler at denoise < 1, runs all its steps (on the tail of a longer schedule)
    hires = work.steps * flops[work.base] + work.steps * flops[work.target]
    return FlopCount(family, work.sizes, work.steps, stage_steps, flops, ratios, cascade / direct, cascade / hires)
