"""The worker side of the evaluation: one batch of images by one method, and what they measure.

A batch is one task of ``evaluate.py``: images of one prompted count from one noise seed, drawn by
one method and reduced at once to per-image measurements (object count, fine-detail power, patch
moments), so only numbers and a few sample images travel back. Every task is deterministic given
its fields, whichever process runs it, so the evaluation's result does not depend on the number of
workers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

import comfy.sample
import comfy.utils
from comfy_extras.nodes_model_advanced import ModelSamplingAuraFlow

from ...adapters.fileformat import load_adapter, save_adapter
from ...adapters.injection import apply_upsampler_adapter
from ...models.demo import demo_model, flow_demo_model
from ...sampling.cascade import CascadeRun, CascadeSettings, stage_seed
from ...sampling.families import detect_family
from ...sampling.plan import plan_stages
from . import disc_family, metrics
from .adapter_run import AdapterRecipe, train_adapter

NATIVE, DIRECT, UPSCALE, HIRES, CASCADE = "native", "direct", "upscale", "hires", "cascade"


@dataclass(frozen=True)
class Method:
    """How one row reaches the target size from a count prompt."""

    kind: str  # NATIVE, DIRECT, UPSCALE, HIRES or CASCADE
    denoise: float = 1.0  # hires fix: KSampler's denoise at the target size
    k: float = 0.0  # cascade: K of the first high-resolution stage
    later_k: float = 0.0  # cascade: K of the second and later stages (0: the same as k)
    adapter: bool = False  # cascade: a lite upsampler adapter in every high-resolution stage
    k_axis: str = "percent"  # cascade: what K measures (the nodes' k_axis); percent: every committed row's

    @property
    def key(self) -> str:
        """Stable name in results.json, e.g. ``hires-0.5``, ``cascade-0.7-0.4``, ``adapter-0.7``, ``cascade-0.7-snr``."""
        if self.kind == HIRES:
            return f"hires-{self.denoise:g}"
        if self.kind == CASCADE:
            later = f"-{self.later_k:g}" if self.later_k else ""
            axis = "" if self.k_axis == "percent" else f"-{self.k_axis}"
            return f"{'adapter' if self.adapter else 'cascade'}-{self.k:g}{later}{axis}"
        return self.kind

    @property
    def label(self) -> str:
        if self.kind == HIRES:
            return f"Hires fix, denoise {self.denoise:g}"
        if self.kind == CASCADE:
            ks = (f"K {self.k:g}" + (f" then {self.later_k:g}" if self.later_k else "")
                  + ("" if self.k_axis == "percent" else f" on the {self.k_axis} axis"))
            return f"Self-Cascade + lite adapter, {ks}" if self.adapter else f"Self-Cascade, {ks}"
        return {NATIVE: "Base model at its native size", DIRECT: "Direct inference",
                UPSCALE: "Plain upscale (bicubic)"}[self.kind]


@dataclass(frozen=True)
class Sampling:
    """What every row shares: the base sampler settings."""

    steps: int
    cfg: float
    sampler: str
    scheduler: str
    shift: float = 0.0  # flow models: the sampling shift ModelSamplingAuraFlow sets (0: the model's own)


@dataclass(frozen=True)
class Batch:
    """One task: ``images`` images of prompted ``count`` at ``size`` px by ``method`` from noise ``seed``."""

    method: Method
    size: int
    count: int
    images: int
    seed: int
    sampling: Sampling
    adapters: tuple[tuple[int, str], ...] = ()  # (stage size, adapter file) for adapter rows
    keep_samples: int = 0  # images to send back for the sample sheet
    demo: str = "unet"  # which demo model draws: a key of DEMO_MODELS


@dataclass
class BatchResult:
    found: list[int]  # objects counted per image
    hf_powers: np.ndarray  # fine-detail power per image
    moments: metrics.PatchMoments
    cpu_seconds: float  # of this process, generation only
    stage_steps: tuple[int, ...]  # steps run at each size, base first
    samples: Optional[torch.Tensor]  # the first keep_samples images


@dataclass(frozen=True)
class AdapterTraining:
    """One adapter training task; the adapter is written to ``path``."""

    recipe: AdapterRecipe
    path: str
    demo: str = "unet"  # which demo model it is trained for: a key of DEMO_MODELS


@dataclass
class AdapterRecord:
    size: int
    parameters: int
    steps: int
    batch: int
    images: int
    learning_rate: float
    loss_before: float
    loss_after: float
    cpu_seconds: float


DEMO_MODELS = {"unet": demo_model, "flow": flow_demo_model}  # name -> module: load_weights() and conditioning()


class DemoModel:
    """A demo model with its prompts and VAE, loaded once per process."""

    def __init__(self, demo: str = "unet"):
        self.module = DEMO_MODELS[demo]
        self.model, self.contexts = self.module.load_weights()
        self.vae = demo_model.pixel_vae()
        self.family = detect_family(self.model)
        self.negative = self.module.conditioning(self.contexts[0])
        self._adapters: dict[str, object] = {}
        self._shifted: dict[float, object] = {}

    def at_shift(self, shift: float):
        """The model as a user's graph gives it: through ModelSamplingAuraFlow (a flow model's shift at the
        multiplier the demo model has, 1) when ``shift`` is set, else as loaded."""
        if not shift:
            return self.model
        if shift not in self._shifted:
            (self._shifted[shift],) = ModelSamplingAuraFlow().patch_aura(self.model, shift)
        return self._shifted[shift]

    def adapter(self, path: str):
        if path not in self._adapters:
            self._adapters[path] = load_adapter(path)
        return self._adapters[path]

    def positive(self, count: int):
        return self.module.conditioning(self.contexts[count])

    def sample(self, batch: Batch, latent: torch.Tensor, seed: int, denoise: float = 1.0) -> torch.Tensor:
        s = batch.sampling
        noise = comfy.sample.prepare_noise(latent, seed)
        return comfy.sample.sample(self.at_shift(s.shift), noise, s.steps, s.cfg, s.sampler, s.scheduler, self.positive(batch.count),
                                   self.negative, latent, denoise=denoise, disable_pbar=True, seed=seed)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent).movedim(-1, 1)

    def generate(self, batch: Batch) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Images (B, 3, size, size) in [0, 1] and the steps run at each size, base first."""
        method, size, steps = batch.method, batch.size, batch.sampling.steps
        native = disc_family.NATIVE_SIZE
        if method.kind in (NATIVE, DIRECT):
            return self.decode(self.sample(batch, empty(batch.images, size), batch.seed)), (steps,)
        if method.kind in (UPSCALE, HIRES):
            base = self.sample(batch, empty(batch.images, native), batch.seed)
            if method.kind == UPSCALE:
                pixels = comfy.utils.common_upscale(self.decode(base), size, size, "bicubic", "disabled")
                return pixels.clamp(0.0, 1.0), (steps,)
            upscaled = comfy.utils.common_upscale(base, size, size, "bilinear", "disabled")
            # KSampler's denoise d runs all ``steps`` steps over the last d of a longer schedule
            resampled = self.sample(batch, upscaled, stage_seed(batch.seed, 1), method.denoise)
            return self.decode(resampled), (steps, steps)
        return self._cascade(batch)

    def _cascade(self, batch: Batch) -> tuple[torch.Tensor, tuple[int, ...]]:
        s, method = batch.sampling, batch.method
        native = disc_family.NATIVE_SIZE
        plan = plan_stages(native, native, batch.size, batch.size, self.family.size_multiple)
        files = dict(batch.adapters)

        def with_adapter(stage_model, pivot, index):
            """Each stage gets the adapter trained at its own size."""
            return apply_upsampler_adapter(stage_model, self.adapter(files[plan.stages[index].width]), pivot)
        settings = CascadeSettings(batch.seed, s.steps, s.cfg, s.sampler, s.scheduler, method.k, later_k=method.later_k,
                                   k_axis=method.k_axis)
        run = CascadeRun(self.at_shift(s.shift), self.positive(batch.count), self.negative, plan, self.family, settings,
                         stage_patch=with_adapter if method.adapter else None, console_bar=False)
        latent, reports = run.run({"samples": empty(batch.images, native)})
        return self.decode(latent["samples"]), tuple(report.steps for report in reports)


def empty(images: int, size: int) -> torch.Tensor:
    return torch.zeros(images, 3, size, size)


def measure(images: torch.Tensor, cpu_seconds: float, stage_steps: tuple[int, ...], keep_samples: int) -> BatchResult:
    return BatchResult(metrics.count_objects(images), metrics.high_frequency_powers(images), metrics.patch_moments(images),
                       cpu_seconds, stage_steps, images[:keep_samples].clone() if keep_samples else None)


_MODELS: dict[str, DemoModel] = {}


def _demo_model(demo: str = "unet") -> DemoModel:
    if demo not in _MODELS:
        _MODELS[demo] = DemoModel(demo)
    return _MODELS[demo]


def run_batch(batch: Batch) -> BatchResult:
    """Generate and measure one batch in this process (one thread, so CPU seconds compare between rows)."""
    torch.set_num_threads(1)
    model = _demo_model(batch.demo)
    started = time.process_time()
    images, stage_steps = model.generate(batch)
    return measure(images, time.process_time() - started, stage_steps, batch.keep_samples)


def run_training(task: AdapterTraining) -> AdapterRecord:
    """Train one adapter with the repo's trainer and write it to ``task.path``."""
    torch.set_num_threads(1)
    model = _demo_model(task.demo)
    recipe = task.recipe
    started = time.process_time()
    adapter, before, after = train_adapter(model.model, model.contexts, model.vae, recipe, model.module.conditioning,
                                           model.family.name)
    seconds = time.process_time() - started
    save_adapter(task.path, adapter, overwrite=True)
    return AdapterRecord(recipe.size, sum(p.numel() for p in adapter.module.parameters()), recipe.steps,
                         recipe.batch_size, recipe.images, recipe.learning_rate, before, after, seconds)


def real_renders(counts: list[int], size: int, seed: int) -> torch.Tensor:
    """Real samples of the family at ``size``, from a seed apart from every training seed."""
    return disc_family.render(disc_family.sample_scenes(counts, np.random.default_rng(seed)), size)
