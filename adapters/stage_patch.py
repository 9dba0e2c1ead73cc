"""A learned upsampler adapter as the cascade's stage patch: applied in every high-resolution stage with its pivot.

The Self-Cascade KSampler and Self-Cascade Upscale both take an optional adapter; ``CascadeRun``
calls the patch with each stage's model and pivot, so neither node knows how an adapter is injected.
"""
from __future__ import annotations

from typing import Optional

from ..sampling.cascade import StagePatch
from .injection import apply_upsampler_adapter, check_applied, check_compatible
from .modules import UpsamplerAdapter


def adapter_stage_patch(model, upsampler_adapter: Optional[UpsamplerAdapter],
                        adapter_strength: float) -> Optional[StagePatch]:
    """Applies ``upsampler_adapter`` in every high-resolution stage with its pivot; None without one.

    An adapter that does not fit ``model`` is refused here, before any stage runs.
    """
    if upsampler_adapter is None:
        return None
    check_compatible(upsampler_adapter, model)
    return _AdapterStagePatch(upsampler_adapter, adapter_strength)


class _AdapterStagePatch:
    """The stage patch, and after each stage the check that the host applied it (``CascadeRun`` calls
    ``after_stage``), so even a host that calls no wrappers cannot turn the adapter into a silent no-op."""

    def __init__(self, upsampler_adapter: UpsamplerAdapter, adapter_strength: float):
        self.upsampler_adapter, self.adapter_strength = upsampler_adapter, adapter_strength

    def __call__(self, stage_model, pivot, _index):
        return apply_upsampler_adapter(stage_model, self.upsampler_adapter, pivot, self.adapter_strength)

    def after_stage(self, stage_model, index: int) -> None:
        check_applied(stage_model, f"cascade stage {index}")
