"""A learned upsampler adapter as the cascade's stage patch: applied in every high-resolution stage with its pivot.

The Self-Cascade KSampler and Self-Cascade Upscale both take an optional adapter; ``CascadeRun``
calls the patch with each stage's model and pivot, so neither node knows how an adapter is injected.
"""
from __future__ import annotations

from typing import Optional

from ..sampling.cascade import StagePatch
from .injection import apply_upsampler_adapter, check_compatible
from .modules import UpsamplerAdapter


def adapter_stage_patch(model, upsampler_adapter: Optional[UpsamplerAdapter],
                        adapter_strength: float) -> Optional[StagePatch]:
    """Applies ``upsampler_adapter`` in every high-resolution stage with its pivot; None without one.

    An adapter that does not fit ``model`` is refused here, before any stage runs.
    """
    if upsampler_adapter is None:
        return None
    check_compatible(upsampler_adapter, model)

    def stage_patch(stage_model, pivot, _index):
        return apply_upsampler_adapter(stage_model, upsampler_adapter, pivot, adapter_strength)
    return stage_patch
