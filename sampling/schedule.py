"""Pivot Reschedule: the stage schedule is the model's own schedule cut where t <= K.

K is a fraction of the model's time range (paper: K = 700 of T = 1000, i.e. 0.7). The cut sigma
comes from the host's ``model_sampling.percent_to_sigma``: the axis ComfyUI's schedulers (and its
start/end percents) are uniform in. Discrete (eps, v) and EDM models are cut at t = K * 1000;
shifted flow models (SD3, Flux, Wan) at the shifted sigma of that time (Wan, shift 8: sigma 0.95),
so K = 0.7 keeps 35 of 50 ``normal`` steps in every family, as the paper's 35 of 50 DDIM steps.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

import comfy.model_management
import comfy.samplers

from .limits import MAX_STEPS

# relative slack so that a schedule sigma equal to the cut sigma up to float error is kept
_CUT_TOLERANCE = 1e-4
# the exact-count search: the first guess, a walk that doubles its stride, then a bisection of the bracket
MAX_SCHEDULE_EVALUATIONS = 1 + 2 * (math.ceil(math.log2(MAX_STEPS)) + 1)

# called before every schedule computation; raises to stop (ComfyUI's interrupt, a route's deadline)
StopCheck = Callable[[], None]


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
    if not 1 <= steps <= MAX_STEPS:
        raise ScheduleError(f"steps = {steps}: a schedule has 1 to {MAX_STEPS} steps.")
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).cpu()


def pivot_sigmas(model_sampling, scheduler: str, steps: int, k: float, stage_steps: int = 0,
                 stop_check: StopCheck = comfy.model_management.throw_exception_if_processing_interrupted
                 ) -> torch.Tensor:
    """Sigmas for one high-resolution stage: the schedule of ``steps`` steps cut at t <= K.

    ``stage_steps`` > 0 asks for exactly that many steps below K instead: the total step count is
    searched so that the cut keeps ``stage_steps`` (same K, finer or coarser grid). The search looks
    at schedules of at most ``MAX_STEPS`` steps, at most ``MAX_SCHEDULE_EVALUATIONS`` of them, and
    calls ``stop_check`` before each (by default ComfyUI's interrupt check; a route passes its deadline).
    """
    if steps < 1:
        raise ScheduleError(f"steps = {steps}: a stage needs at least 1 step.")
    if stage_steps < 0:
        raise ScheduleError(f"stage_steps = {stage_steps}: use 0 (derive from K and steps) or a positive count.")
    sigma_k = cut_sigma(model_sampling, k)

    def cut(total: int) -> torch.Tensor:
        stop_check()
        return cut_schedule(full_schedule(model_sampling, scheduler, total), sigma_k)

    if stage_steps == 0:
        sigmas = cut(steps)
        if len(sigmas) < 2:
            raise ScheduleError(f"K = {k} with {steps} steps keeps no step; raise K or steps, or set stage_steps.")
        return sigmas
    return _exact_count(cut, stage_steps, k, scheduler)


def _exact_count(cut: Callable[[int], torch.Tensor], stage_steps: int, k: float, scheduler: str) -> torch.Tensor:
    """The cut of the schedule whose part below K has ``stage_steps`` steps, or the nearest count.

    The kept count grows with the total (ties and the odd dip of deduplicating schedulers aside) by
    about K per step, and a cut keeps at most its total. The first guess (``stage_steps / K``) lands
    for schedules uniform in t; otherwise the search walks from it by the missing count / K, doubling
    the stride until the count is bracketed, and bisects the bracket. Totals stay within
    ``stage_steps - 1`` (too few, never computed) and ``MAX_STEPS``.
    """
    if stage_steps > MAX_STEPS:
        raise ScheduleError(f"stage_steps = {stage_steps}: at most {MAX_STEPS}.")
    found: dict[int, torch.Tensor] = {}

    def kept(total: int) -> int:
        if total not in found:
            found[total] = cut(total)
        return len(found[total]) - 1

    def stride_for(total: int) -> int:
        return max(1, round(abs(stage_steps - kept(total)) / k))

    guess = min(MAX_STEPS, max(stage_steps, round(stage_steps / k)))
    if kept(guess) == stage_steps:
        return found[guess]
    if kept(guess) < stage_steps:
        short, stride = guess, stride_for(guess)
        while True:
            if short == MAX_STEPS:
                raise ScheduleError(f"stage_steps = {stage_steps} below K = {k} needs a {scheduler} schedule of more "
                                    f"than {MAX_STEPS} steps (at {MAX_STEPS} steps it keeps {kept(MAX_STEPS)}); "
                                    "lower stage_steps or raise K.")
            probe = min(MAX_STEPS, short + stride)
            if kept(probe) == stage_steps:
                return found[probe]
            if kept(probe) > stage_steps:
                enough = probe
                break
            short, stride = probe, max(2 * stride, stride_for(probe))
    else:
        enough, stride = guess, stride_for(guess)
        while True:
            probe = max(stage_steps - 1, enough - stride)  # a cut keeps at most its total: stage_steps - 1 is too few
            if probe != stage_steps - 1 and kept(probe) == stage_steps:
                return found[probe]
            if probe == stage_steps - 1 or kept(probe) < stage_steps:
                short = probe
                break
            enough, stride = probe, max(2 * stride, stride_for(probe))
    while enough - short > 1:
        middle = (short + enough) // 2
        if kept(middle) == stage_steps:
            return found[middle]
        if kept(middle) > stage_steps:
            enough = middle
        else:
            short = middle
    # no grid lands exactly on stage_steps below K: the nearest count
    return found[min(found, key=lambda total: (abs(kept(total) - stage_steps), total))]
