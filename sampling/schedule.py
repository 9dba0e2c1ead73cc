"""Pivot Reschedule: the stage schedule is the model's own schedule cut where t <= K.

K is a fraction of the model's time range (paper: K = 700 of T = 1000, i.e. 0.7). The cut sigma
comes from the host's ``model_sampling.percent_to_sigma``: the axis ComfyUI's schedulers (and its
start/end percents) are uniform in. Discrete (eps, v) and EDM models are cut at t = K * 1000;
shifted flow models (SD3, Flux, Wan) at the shifted sigma of that time (Wan, shift 8: sigma 0.95),
so K = 0.7 keeps 35 of 50 ``normal`` steps in every family, as the paper's 35 of 50 DDIM steps.
"""
from __future__ import annotations

import torch

import comfy.samplers

# relative slack so that a schedule sigma equal to the cut sigma up to float error is kept
_CUT_TOLERANCE = 1e-4
_MAX_SEARCH = 64


class ScheduleError(ValueError):
    """A schedule request that cannot be met; the message names the problem and the fix."""


def cut_sigma(model_sampling, k: float) -> float:
    """Sigma at t = K, with ``k`` = K as a fraction of the model's time range (0, 1]."""
    if not 0.0 < k <= 1.0:
        raise ScheduleError(f"K = {k} is outside (0, 1]; the paper uses 0.7 (t = 700 of 1000).")
    return float(model_sampling.percent_to_sigma(1.0 - k))


def cut_schedule(sigmas: torch.Tensor, sigma_k: float) -> torch.Tensor:
    """The tail of ``sigmas`` that starts at the first sigma <= sigma_k."""
    keep = (sigmas[:-1] <= sigma_k * (1.0 + _CUT_TOLERANCE)).nonzero()
    start = int(keep[0]) if len(keep) else len(sigmas) - 1
    return sigmas[start:]


def full_schedule(model_sampling, scheduler: str, steps: int) -> torch.Tensor:
    if scheduler not in comfy.samplers.SCHEDULER_NAMES:
        raise ScheduleError(f"unknown scheduler '{scheduler}'; choose one of {', '.join(comfy.samplers.SCHEDULER_NAMES)}.")
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).cpu()


def pivot_sigmas(model_sampling, scheduler: str, steps: int, k: float, stage_steps: int = 0) -> torch.Tensor:
    """Sigmas for one high-resolution stage: the schedule of ``steps`` steps cut at t <= K.

    ``stage_steps`` > 0 asks for exactly that many steps below K instead: the total step count is
    searched so that the cut keeps ``stage_steps`` (same K, finer or coarser grid).
    """
    if steps < 1:
        raise ScheduleError(f"steps = {steps}: a stage needs at least 1 step.")
    if stage_steps < 0:
        raise ScheduleError(f"stage_steps = {stage_steps}: use 0 (derive from K and steps) or a positive count.")
    sigma_k = cut_sigma(model_sampling, k)
    if stage_steps == 0:
        sigmas = cut_schedule(full_schedule(model_sampling, scheduler, steps), sigma_k)
        if len(sigmas) < 2:
            raise ScheduleError(f"K = {k} with {steps} steps keeps no step; raise K or steps, or set stage_steps.")
        return sigmas
    total = max(stage_steps, round(stage_steps / k))
    closest = None
    for _ in range(_MAX_SEARCH):
        sigmas = cut_schedule(full_schedule(model_sampling, scheduler, total), sigma_k)
        kept = len(sigmas) - 1
        if kept == stage_steps:
            return sigmas
        if closest is None or abs(kept - stage_steps) < abs(len(closest) - 1 - stage_steps):
            closest = sigmas
        total = max(1, total + (stage_steps - kept))
    return closest  # a grid that never lands exactly on stage_steps below K: the nearest count
