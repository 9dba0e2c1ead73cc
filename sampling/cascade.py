"""The stage loop: base stage exactly as KSampler, then one pivot-rescheduled stage per plan step.

Stage 0 samples the given latent as ``nodes.common_ksampler`` would (same noise, same schedule,
``denoise`` honoured). Stage r >= 1 upsamples the previous stage's clean latent (the pivot),
starts the schedule cut at that stage's K (``schedule.pivot_sigmas``; stages 2 and later may
have a K of their own) on it with fresh noise from ``seed + r`` (the host's sampler adds it at
the first sigma), and denoises with the same model, prompt and CFG: bit for bit what
``LatentUpscale`` + ``SamplerCustom`` with Pivot Reschedule sigmas and ``noise_seed = seed + r`` give.

A ``CascadeRun`` holds what one node call samples with (model, prompt, plan, family, settings,
optional pivot VAE and stage patch, the progress bar). ``run`` is the base stage followed by the
climb; ``climb`` alone starts from a clean pivot someone already has (Self-Cascade Upscale: an
encoded image), with the same stage indices and seeds, so both climb through the same code.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from .families import Family
from .latents import prepare_base_latent
from .memory import PeakMeter
from .pivot import upscale_pivot
from .plan import CascadePlan
from .schedule import pivot_sigmas, snr_of_sigma

# (stage model, pivot latent in VAE space, stage index) -> model to sample this stage with; a patch with an
# ``after_stage(stage_model, index)`` method has it called once that stage has sampled (the adapter's check
# that the host applied it)
StagePatch = Callable[[object, torch.Tensor, int], object]


class CascadeInputError(ValueError):
    """An input the cascade cannot run on; the message names the problem and the fix."""


@dataclass(frozen=True)
class CascadeSettings:
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    k: float = 0.7  # K: where each high-resolution stage starts, a fraction of the model's time range
    upscale_method: str = "bilinear"
    stage_steps: int = 0  # 0: derived from K and steps
    denoise: float = 1.0  # base stage only, as KSampler's
    later_k: float = 0.0  # K of the second and later high-resolution stages; 0: the same as k
    k_axis: str = "auto"  # what K measures (schedule.K_AXIS_CHOICES); auto: per model (schedule.k_axis_of)

    def k_of_stage(self, stage: int) -> float:
        """K of high-resolution stage ``stage`` (1 is the first after the base)."""
        return self.later_k if stage > 1 and self.later_k > 0.0 else self.k


@dataclass(frozen=True)
class StageReport:
    index: int
    width: int
    height: int
    steps: int
    seconds: float
    k: Optional[float] = None  # None for the base stage, which starts from pure noise
    sigma: Optional[float] = None  # the sigma the pivot is re-noised to (the stage schedule's first)
    snr: Optional[float] = None  # its signal-to-noise ratio on this model's noise mixture
    peak: str = ""  # the stage's measured peak memory in words (memory.PeakMeter); empty: not measured

    def line(self) -> str:
        measured = f"; {self.peak}" if self.peak else ""
        if self.index == 0:
            return f"base: {self.width}x{self.height}, {self.steps} steps, {self.seconds:.2f} s{measured}"
        return (f"stage {self.index}: {self.width}x{self.height}, K {self.k:.2f}, {self.steps} steps, "
                f"{self.seconds:.2f} s; re-noised to sigma {self.sigma:.3g} (SNR {self.snr:.2g}){measured}")


def stage_seed(seed: int, stage: int) -> int:
    """Noise seed of stage ``stage``: the base uses ``seed``, stage r uses ``seed + r``."""
    return (seed + stage) % 0xFFFFFFFFFFFFFFFF


class _Progress:
    """One progress bar (and latent previews) over the steps of all stages."""

    def __init__(self, model, total_steps: int):
        self.total = total_steps
        self.done = 0
        self.bar = comfy.utils.ProgressBar(total_steps)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def stage_callback(self, stage_steps: int):
        offset = self.done
        self.done += stage_steps

        def callback(step, x0, x, total_steps):
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
            self.bar.update_absolute(offset + step + 1, self.total, preview)
        return callback


def check_latent(model, samples: torch.Tensor) -> None:
    """Refuse latents the model cannot sample, before any compute."""
    if not torch.isfinite(samples).all():
        raise CascadeInputError("the input latent contains NaN or Inf values; regenerate it (e.g. from Empty Latent Image) "
                                "or fix the node that produced it.")
    channels = model.get_model_object("latent_format").latent_channels
    if samples.shape[1] != channels and torch.count_nonzero(samples) != 0:
        raise CascadeInputError(f"the latent has {samples.shape[1]} channels but this model expects {channels}; "
                                "encode the image with this model's VAE or use an empty latent of the model's type.")


def stage_schedules(model, plan: CascadePlan, settings: CascadeSettings) -> dict[int, torch.Tensor]:
    """The cut schedule of every high-resolution stage (by stage index), each cut at its own K on the settings' axis."""
    model_sampling = model.get_model_object("model_sampling")
    by_k: dict[float, torch.Tensor] = {}
    for stage in range(1, plan.cascade_stages + 1):
        k = settings.k_of_stage(stage)
        if k not in by_k:
            by_k[k] = pivot_sigmas(model_sampling, settings.scheduler, settings.steps, k, settings.stage_steps,
                                   axis=settings.k_axis)
    return {stage: by_k[settings.k_of_stage(stage)] for stage in range(1, plan.cascade_stages + 1)}


def is_oom(error: Exception) -> bool:
    """Out of memory by the host's own test where it has one (newer hosts also count accelerator
    allocation errors), else by its ``OOM_EXCEPTION`` type."""
    host_test = getattr(comfy.model_management, "is_oom", None)
    if host_test is not None:
        return host_test(error)
    return isinstance(error, comfy.model_management.OOM_EXCEPTION)


@contextlib.contextmanager
def oom_named(stage: int, width: int, height: int) -> Iterator[None]:
    """Re-raise an out-of-memory error with the stage and size it happened at, the fixes, and the
    host's original message (same exception type, so the host still treats it as out of memory)."""
    try:
        yield
    except Exception as error:
        if not is_oom(error):
            raise
        message = (f"out of memory in cascade stage {stage} at {width}x{height}: choose a smaller target, "
                   f"fewer stages, a tiled VAE decode (VAE Decode (Tiled)), or free other models. Original: {error}")
        raise type(error)(message) from error


class CascadeRun:
    """One node call's cascade: built once with everything the stages share, then ``run`` or ``climb``.

    ``console_bar`` None follows the host's ``--disable-progress-bar``; the progress bar the UI shows
    (with latent previews) spans every stage the call runs.
    """

    def __init__(self, model, positive, negative, plan: CascadePlan, family: Family, settings: CascadeSettings,
                 vae=None, stage_patch: Optional[StagePatch] = None, console_bar: Optional[bool] = None):
        self.model, self.positive, self.negative = model, positive, negative
        self.plan, self.family, self.settings = plan, family, settings
        self.vae, self.stage_patch = vae, stage_patch  # vae: upsample each pivot in pixel space
        self.disable_pbar = not (comfy.utils.PROGRESS_BAR_ENABLED if console_bar is None else console_bar)
        self.sigmas_of_stage = stage_schedules(model, plan, settings)
        self.model_sampling = model.get_model_object("model_sampling")
        self.high_res_steps = sum(len(sigmas) - 1 for sigmas in self.sigmas_of_stage.values())
        self.progress: Optional[_Progress] = None
        self.meter = PeakMeter(model.load_device)  # each stage's peak memory, for its report line

    @property
    def notes(self) -> list[str]:
        """What the report should add about the run as a whole (peak memory that could not be measured)."""
        return list(filter(None, [self.meter.unavailable_note]))

    def run(self, latent: dict) -> tuple[dict, list[StageReport]]:
        """Every stage of the plan from ``latent``; returns the final latent dict and one report per stage."""
        s, base = self.settings, self.plan.base
        latent = prepare_base_latent(self.model, latent)  # as the host's KSampler: newer hosts resize empty latents
        samples = latent["samples"]
        check_latent(self.model, samples)
        self.progress = _Progress(self.model, s.steps + self.high_res_steps)
        self.meter.start()
        started = time.perf_counter()
        noise = comfy.sample.prepare_noise(samples, s.seed, latent.get("batch_index"))
        with oom_named(0, base.width, base.height):
            samples = comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, self.positive,
                                          self.negative, samples, denoise=s.denoise, noise_mask=latent.get("noise_mask"),
                                          callback=self.progress.stage_callback(s.steps), disable_pbar=self.disable_pbar,
                                          seed=s.seed)
        report = StageReport(0, base.width, base.height, s.steps, time.perf_counter() - started,
                             peak=self.meter.words(self.meter.peak()))
        out, reports = self._high_res_stages({**latent, "samples": samples})
        return out, [report, *reports]

    def climb(self, pivot: dict) -> tuple[dict, list[StageReport]]:
        """The high-resolution stages from a clean ``pivot`` of the plan's base size (no base stage).

        Stage r still uses noise seed ``seed + r``: from the base a KSampler made with ``seed``, this
        continues exactly as that Self-Cascade KSampler would. One report per high-resolution stage.
        """
        check_latent(self.model, pivot["samples"])
        self.progress = _Progress(self.model, self.high_res_steps)
        return self._high_res_stages(pivot)

    def _high_res_stages(self, first_pivot: dict) -> tuple[dict, list[StageReport]]:
        """Stages 1.. of the plan, each from the previous stage's clean latent (``first_pivot`` for stage 1)."""
        s = self.settings
        batch_index, noise_mask = first_pivot.get("batch_index"), first_pivot.get("noise_mask")
        samples = first_pivot["samples"]
        reports = []
        sampler = comfy.samplers.sampler_object(s.sampler_name)
        for index, size in enumerate(self.plan.stages[1:], start=1):
            comfy.model_management.throw_exception_if_processing_interrupted()
            self.meter.start()
            started = time.perf_counter()
            pivot = samples
            upscaled = upscale_pivot(pivot, size, self.family.latent_factor, s.upscale_method, self.vae)
            stage_model = self.stage_patch(self.model, pivot, index) if self.stage_patch is not None else self.model
            seed = stage_seed(s.seed, index)
            noise = comfy.sample.prepare_noise(upscaled, seed, batch_index)
            sigmas = self.sigmas_of_stage[index]
            with oom_named(index, size.width, size.height):
                samples = comfy.sample.sample_custom(stage_model, noise, s.cfg, sampler, sigmas, self.positive,
                                                     self.negative, upscaled, noise_mask=noise_mask,
                                                     callback=self.progress.stage_callback(len(sigmas) - 1),
                                                     disable_pbar=self.disable_pbar, seed=seed)
            if hasattr(self.stage_patch, "after_stage"):
                self.stage_patch.after_stage(stage_model, index)
            sigma = float(sigmas[0])
            reports.append(StageReport(index, size.width, size.height, len(sigmas) - 1, time.perf_counter() - started,
                                       s.k_of_stage(index), sigma, snr_of_sigma(self.model_sampling, sigma),
                                       self.meter.words(self.meter.peak())))

        out = first_pivot.copy()
        out["samples"] = samples
        return out, reports
