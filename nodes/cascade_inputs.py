"""The cascade inputs the Self-Cascade KSampler and Self-Cascade Upscale share: one schema block, one check.

Both nodes take the same settings (seed, steps, CFG, sampler and scheduler; scale or target size,
K, later K, upscale method and stage steps; an optional adapter) with the same types, defaults and
limits from ``sampling/limits.py``. Only the words differ: each node speaks from where its cascade
starts (a base it samples, or the user's image), so each gives its tooltips in a ``Wording``.
"""
from __future__ import annotations

from dataclasses import dataclass

import comfy.samplers

from ..sampling import limits
from ..sampling.cascade import CascadeSettings
from ..sampling.pivot import LATENT_METHODS
from .api import UpsamplerAdapter, io

K_TOOLTIP = ("K: where each high-resolution stage starts, as a fraction of the model's time range (the pivot is "
             "re-noised to t = K). 0.7 is the paper's t = 700 of 1000 (35 of 50 steps). Lower keeps more of the pivot; "
             "higher lets the model repaint more (and risks repeated objects). k_axis says how K is read on flow "
             "models (Flux, SD3, Wan).")

K_AXIS_TOOLTIP = ("What K measures. percent: a fraction of the scheduler's steps (K 0.7 keeps the last 70% of them). "
                  "snr: how noisy the re-noised pivot is, as a signal-to-noise ratio (signal over noise; lower is "
                  "noisier): K 0.7 re-noises it as much as t = 700 does on SD1.x, the paper's setting, in any model. "
                  "On SD1.x/SDXL (eps, v) the two are the same; shifted flow models (SD3, Flux, Wan) re-noise much "
                  "harder on the percent axis at the same K. auto: percent on eps/v models, snr on flow models (measured "
                  "on the pack's flow demo model: it kept the composition across shifts; see the README's flow "
                  "recipes). The plan and the run report show each stage's sigma and SNR.")


@dataclass(frozen=True)
class Wording:
    """One node's tooltips for the shared inputs, and its default K."""

    seed: str
    steps: str
    scheduler: str
    scale_by: str
    target_width: str
    k: str
    later_k: str
    upscale_method: str
    stage_steps: str
    adapter: str
    k_default: float = limits.K.default


def sampler_inputs(words: Wording) -> list[io.Input]:
    """seed, steps, cfg, sampler_name, scheduler."""
    return [
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip=words.seed),
        io.Int.Input("steps", **limits.STEPS.schema(), tooltip=words.steps),
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale, the same in every stage."),
        io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, tooltip="Sampler for every stage."),
        io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="normal", tooltip=words.scheduler),
    ]


def stage_inputs(words: Wording) -> list[io.Input]:
    """scale_by, target_width, target_height, k, later_k, upscale_method, stage_steps."""
    return [
        io.Float.Input("scale_by", **limits.SCALE_BY.schema(), step=0.05, tooltip=words.scale_by),
        io.Int.Input("target_width", **limits.TARGET_WIDTH.schema(), step=8, tooltip=words.target_width),
        io.Int.Input("target_height", **limits.TARGET_HEIGHT.schema(), step=8,
                     tooltip="Final height in pixels (0: use scale_by). Rounded to the model's size multiple."),
        io.Float.Input("k", default=words.k_default, min=limits.K.low, max=limits.K.high, step=0.01, tooltip=words.k),
        io.Float.Input("later_k", **limits.LATER_K.schema(), step=0.01, tooltip=words.later_k),
        io.Combo.Input("upscale_method", options=list(LATENT_METHODS), default="bilinear",
                       tooltip=words.upscale_method),
        io.Int.Input("stage_steps", **limits.STAGE_STEPS.schema(), tooltip=words.stage_steps),
    ]


def adapter_inputs(words: Wording) -> list[io.Input]:
    """upsampler_adapter, adapter_strength (both optional)."""
    return [
        UpsamplerAdapter.Input("upsampler_adapter", optional=True, tooltip=words.adapter),
        io.Float.Input("adapter_strength", default=1.0, min=0.0, max=10.0, step=0.01, optional=True,
                       tooltip="Multiplier of the adapter's features (1.0 as trained)."),
    ]


def k_axis_input() -> io.Input:
    """k_axis: optional and the node's last widget, so saved workflows (widget values by position) keep theirs."""
    return io.Combo.Input("k_axis", options=list(limits.K_AXIS.options), default=limits.K_AXIS.default, optional=True,
                          tooltip=K_AXIS_TOOLTIP)


def cascade_settings(seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, scale_by: float,
                     target_width: int, target_height: int, k: float, later_k: float, upscale_method: str,
                     stage_steps: int, denoise: float = 1.0, k_axis: str = limits.K_AXIS.default) -> CascadeSettings:
    """The node's cascade settings, its numbers first checked against their limits: the host's min/max
    checks let a JSON NaN through, this refuses it naming the setting and its range."""
    limits.check_values(limits.CASCADE, dict(steps=steps, stage_steps=stage_steps, k=k, later_k=later_k,
                                             scale_by=scale_by, target_width=target_width, target_height=target_height))
    limits.K_AXIS.check(k_axis)
    return CascadeSettings(seed, steps, cfg, sampler_name, scheduler, k, upscale_method, stage_steps, denoise, later_k,
                           k_axis)
