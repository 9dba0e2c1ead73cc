"""Pivot Reschedule: the stage schedule is the model's own schedule cut where t <= K.

K is a fraction of the model's time range (paper: K = 700 of T = 1000, i.e. 0.7). The cut sigma
comes from the host's ``model_sampling.percent_to_sigma``: the axis ComfyUI's schedulers (and its
start/end percents) are uniform in. Discrete (eps, v) and EDM models are cut at t = K * 1000;
shifted flow models (SD3, Flux, Wan) at the shifted sigma of that time (Wan, shift 8: sigma 0.95),
so K = 0.7 keeps 35 of 50 ``normal`` steps in every family, as the paper's 35 of 50 DDIM steps.

That axis is one of two meanings of K (``K_AXES``). On the ``snr`` axis K names the paper's noise
level instead: the signal-to-noise ratio SD's own schedule has at t = K (``paper_snr``), which the
pivot is re-noised to in any family. On SD1.x/SDXL the two coincide; a flow model shifted by 3 (SD3,
Flux) reaches the paper's K = 0.7 at about 0.5 of its own axis, Wan's shift 8 at about 0.3.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.samplers

from .limits import K_AXIS, MAX_STEPS

# relative slack so that a schedule sigma equal to the cut sigma up to float error is kept
_CUT_TOLERANCE = 1e-4
# the exact-count search: the first guess, a walk that doubles its stride, then a bisection of the bracket
MAX_SCHEDULE_EVALUATIONS = 1 + 2 * (math.ceil(math.log2(MAX_STEPS)) + 1)

# called before every schedule computation; raises to stop (ComfyUI's interrupt, a route's deadline)
StopCheck = Callable[[], None]


# what K measures: a fraction of the scheduler's time axis, or the paper's signal-to-noise ratio at t = K
K_AXES = ("percent", "snr")
# the nodes' choice: "auto" (per model: ``k_axis_of``), then K_AXES
K_AXIS_CHOICES = K_AXIS.options
# what "auto" means on flow (CONST) models, where the axes differ: measured on the flow demo model
# (benchmarks/evidence/flow_results.json, issue 19), where K read as the paper's SNR kept the composition
# better across sampling shifts 1, 3 and 8 than any one K on the scheduler's percent axis
FLOW_K_AXIS = "snr"
_AXIS_SEARCH_ITERATIONS = 60  # bisection of a monotone scalar function on [0, 1]: float64 resolution


class ScheduleError(ValueError):
    """A schedule request that cannot be met; the message names the problem and the fix."""


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ScheduleError(f"K = {k} is outside (0, 1]; the paper uses 0.7 (t = 700 of 1000).")


@functools.lru_cache(maxsize=1)
def _paper_model_sampling() -> comfy.model_sampling.ModelSamplingDiscrete:
    """SD1.x's discrete schedule (scaled linear betas 0.00085 to 0.012), the one the paper's K is set on."""
    return comfy.model_sampling.ModelSamplingDiscrete()


def is_flow(model_sampling) -> bool:
    """Whether the model mixes x = (1 - sigma) x0 + sigma * noise (SD3, Flux, Wan) rather than x0 + sigma * noise."""
    return isinstance(model_sampling, comfy.model_sampling.CONST)


def host_model_sampling(model_type: str, shift: float = 0.0):
    """The host's own model_sampling object for a ``comfy.model_base.ModelType`` name, as its model loader
    builds it (``comfy.model_base.model_sampling``) from a config whose sampling settings set only ``shift``
    (0: the class's default), for planning where no model is loaded. SD-style schedules take their
    defaults (SD1.x/SDXL's betas)."""
    import comfy.model_base  # the host's model module: imported when the host asks, not with the math

    settings = {"shift": shift} if shift > 0.0 else {}
    config = type("PlanConfig", (), {"sampling_settings": settings})()
    return comfy.model_base.model_sampling(config, comfy.model_base.ModelType[model_type])


def snr_of_sigma(model_sampling, sigma: float) -> float:
    """Signal-to-noise ratio (signal variance over noise variance) of the model's noisy input at ``sigma``."""
    if sigma <= 0.0:
        return math.inf
    if is_flow(model_sampling):
        return ((1.0 - sigma) / sigma) ** 2 if sigma < 1.0 else 0.0
    return 1.0 / sigma ** 2


def sigma_of_snr(model_sampling, snr: float) -> float:
    """The model's sigma whose noisy input has signal-to-noise ratio ``snr`` (inverse of ``snr_of_sigma``)."""
    if is_flow(model_sampling):
        return 1.0 / (1.0 + math.sqrt(snr))
    return 1.0 / math.sqrt(snr)


def paper_snr(k: float) -> float:
    """The signal-to-noise ratio SD's schedule has at t = K (0.090 at the paper's K = 0.7)."""
    _check_k(k)
    return snr_of_sigma(_paper_model_sampling(), float(_paper_model_sampling().percent_to_sigma(1.0 - k)))


def k_axis_of(model_sampling, axis: str = "auto") -> str:
    """The axis ``axis`` names for this model: itself, or for "auto" ``FLOW_K_AXIS`` on flow models and
    "percent" on the others (eps, v, EDM), where it is the snr axis at the paper's schedule."""
    if axis not in K_AXIS_CHOICES:
        raise ScheduleError(f"K axis '{axis}' is unknown; choose one of {', '.join(K_AXIS_CHOICES)}.")
    if axis != "auto":
        return axis
    return FLOW_K_AXIS if is_flow(model_sampling) else "percent"


def k_on_model_axis(model_sampling, k: float, axis: str = "percent") -> float:
    """K as a fraction of the model's own time axis, for ``k`` read on ``axis`` (one of ``K_AXIS_CHOICES``).

    On the ``snr`` axis: the fraction whose sigma re-noises to the paper's SNR at ``k``, found by
    bisection of the model's ``percent_to_sigma`` (decreasing in percent); capped at 1 where the model's
    noisiest sigma is cleaner than that SNR.
    """
    _check_k(k)
    if k_axis_of(model_sampling, axis) == "percent":
        return k
    sigma = sigma_of_snr(model_sampling, paper_snr(k))
    noisy, clean = 0.0, 1.0  # percents: sigma(noisy) >= sigma >= sigma(clean)
    if float(model_sampling.percent_to_sigma(noisy)) <= sigma:
        return 1.0
    for _ in range(_AXIS_SEARCH_ITERATIONS):
        middle = (noisy + clean) / 2.0
        if float(model_sampling.percent_to_sigma(middle)) > sigma:
            noisy = middle
        else:
            clean = middle
    return max(1.0 - clean, 1e-6)


def cut_sigma(model_sampling, k: float, axis: str = "percent") -> float:
    """Sigma at t = K, with ``k`` = K in (0, 1] read on ``axis`` (default: the model's time range)."""
    return float(model_sampling.percent_to_sigma(1.0 - k_on_model_axis(model_sampling, k, axis)))


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
                 stop_check: StopCheck = comfy.model_management.throw_exception_if_processing_interrupted,
                 axis: str = "percent") -> torch.Tensor:
    """Sigmas for one high-resolution stage: the schedule of ``steps`` steps cut at t <= K.

    ``stage_steps`` > 0 asks for exactly that many steps below K instead: the total step count is
    searched so that the cut keeps ``stage_steps`` (same K, finer or coarser grid). The search looks
    at schedules of at most ``MAX_STEPS`` steps, at most ``MAX_SCHEDULE_EVALUATIONS`` of them, and
    calls ``stop_check`` before each (by default ComfyUI's interrupt check; a route passes its deadline).
    ``axis`` says what ``k`` measures (``K_AXIS_CHOICES``).
    """
    if steps < 1:
        raise ScheduleError(f"steps = {steps}: a stage needs at least 1 step.")
    if stage_steps < 0:
        raise ScheduleError(f"stage_steps = {stage_steps}: use 0 (derive from K and steps) or a positive count.")
    model_k = k_on_model_axis(model_sampling, k, axis)
    sigma_k = cut_sigma(model_sampling, model_k)

    def cut(total: int) -> torch.Tensor:
        stop_check()
        return cut_schedule(full_schedule(model_sampling, scheduler, total), sigma_k)

    if stage_steps == 0:
        sigmas = cut(steps)
        if len(sigmas) < 2:
            raise ScheduleError(f"K = {k} with {steps} steps keeps no step; raise K or steps, or set stage_steps.")
        return sigmas
    named = f"{k}" if model_k == k else f"{k} (on the snr axis: {model_k:.3f} of this model's time range)"
    return _exact_count(cut, stage_steps, model_k, scheduler, named)


def _exact_count(cut: Callable[[int], torch.Tensor], stage_steps: int, k: float, scheduler: str,
                 named: str) -> torch.Tensor:
    """The cut of the schedule whose part below K has ``stage_steps`` steps, or the nearest count.

    The kept count grows with the total (ties and the odd dip of deduplicating schedulers aside) by
    about K per step, and a cut keeps at most its total. The first guess (``stage_steps / K``) lands
    for schedules uniform in t; otherwise the search walks from it by the missing count / K, doubling
    the stride until the count is bracketed, and bisects the bracket. Totals stay within
    ``stage_steps - 1`` (too few, never computed) and ``MAX_STEPS``. ``named``: K as the user set it, for messages.
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
                raise ScheduleError(f"stage_steps = {stage_steps} below K = {named} needs a {scheduler} schedule of more "
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
