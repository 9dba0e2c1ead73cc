"""Training throughput of the upsampler adapter: optimizer steps per second and peak memory.

Runs the real trainer (``adapters.training``: data prepared and cached by ``prepare_data``, the
``Trainer``'s own steps) on a folder of random images at a stated crop and batch. Step times come
from the trainer's per-step callback, which follows the loss read-back (a device synchronisation),
so the host clock is exact on a GPU too; the first ``warmup`` steps are not counted.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

import comfy.model_management

from ..adapters.dataset import TrainingCache
from ..adapters.training import Trainer, TrainingSettings, fresh_adapter, prepare_data
from .measure import PeakMemory
from .models import ModelSet


@dataclass(frozen=True)
class TrainingResult:
    family: str
    variant: str
    resolution: int  # training crop, pixels per side; the pivot is half of it
    batch: int
    steps_timed: int
    precision: str
    parameters: int = 0
    steps_per_second: Optional[float] = None
    peak_bytes: Optional[int] = None
    error: Optional[str] = None  # "out of memory" instead of figures


def write_random_images(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """``count`` PNGs of uniform noise, ``size`` pixels square (already there: kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for index in range(count):
        path = folder / f"noise-{index}.png"
        if not path.exists():
            pixels = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=generator)
            Image.fromarray(pixels.numpy()).save(path)
    return folder


def training_throughput(models: ModelSet, variant: str, resolution: int, batch: int, steps: int, warmup: int,
                        workdir: Path, device: torch.device) -> TrainingResult:
    """Train ``warmup + steps`` steps of a fresh ``variant`` adapter; steps/s over the last ``steps``."""
    if warmup < 1 or steps < 1:
        raise ValueError("training throughput needs at least one warm-up step and one timed step")
    settings = TrainingSettings(resolution, resolution, warmup + steps, batch_size=batch, seed=0)
    images = write_random_images(workdir / f"images-{resolution}", batch, resolution)
    memory = PeakMemory(device)
    stamps: list[float] = []
    result = dict(family=models.family, variant=variant, resolution=resolution, batch=batch, steps_timed=steps)
    trainer = None
    try:
        with torch.inference_mode(False):
            adapter = fresh_adapter(models.model, variant, None, settings)
            data = prepare_data(images, models.vae, settings, TrainingCache(workdir / "cache"), "benchmark-vae",
                                conditioning=models.positive)
            trainer = Trainer(models.model, adapter, data, settings, "benchmark-model")
            precision = str(trainer.autocast_dtype or torch.float32).removeprefix("torch.")
            memory.reset()
            trainer.run(on_step=lambda report: stamps.append(time.perf_counter()))
            peak = memory.peak_bytes()
    except comfy.model_management.OOM_EXCEPTION:
        return TrainingResult(**result, precision="—", error="out of memory")
    finally:
        del trainer
        gc.collect()
        comfy.model_management.soft_empty_cache()
    return TrainingResult(**result, precision=precision, parameters=adapter.parameter_count(),
                          steps_per_second=steps / (stamps[-1] - stamps[warmup - 1]), peak_bytes=peak)
