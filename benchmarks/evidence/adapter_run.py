"""Train a lite upsampler adapter for the demo model with the repo's trainer, on real renders.

Real high-resolution samples of the disc family are written as PNGs with a caption file holding
the count ("1", "2", "3"), so the trainer (``adapters/training.py``) sees exactly what a user's
image folder gives it; the caption's conditioning is the demo model's count context.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...adapters.training import Trainer, TrainingSettings, fresh_adapter, prepare_data
from ...adapters.dataset import TrainingCache
from ...adapters.modules import UpsamplerAdapter
from ...models.demo import demo_model
from . import disc_family


@dataclass(frozen=True)
class AdapterRecipe:
    size: int  # training resolution; the pivot is half of it
    images: int
    steps: int
    learning_rate: float
    batch_size: int
    seed: int


def write_image_folder(folder: Path, size: int, images: int, seed: int) -> None:
    """``images`` real renders at ``size`` (counts cycling 1, 2, 3), each with its count as caption."""
    counts = [disc_family.COUNTS[i % len(disc_family.COUNTS)] for i in range(images)]
    renders = disc_family.render(disc_family.sample_scenes(counts, np.random.default_rng(seed)), size)
    for index, (count, image) in enumerate(zip(counts, renders)):
        pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:04d}.png")
        (folder / f"{index:04d}.txt").write_text(str(count), encoding="utf-8")


def train_adapter(model, contexts: dict, vae, recipe: AdapterRecipe) -> tuple[UpsamplerAdapter, float, float]:
    """A lite adapter trained per ``recipe``; returns it and the trainer's fixed-batch loss before and after."""
    settings = TrainingSettings(width=recipe.size, height=recipe.size, steps=recipe.steps,
                                learning_rate=recipe.learning_rate, batch_size=recipe.batch_size, seed=recipe.seed)
    with tempfile.TemporaryDirectory(prefix="selfcascade-evidence-") as workdir:
        images, cache = Path(workdir) / "images", TrainingCache(Path(workdir) / "cache")
        images.mkdir()
        write_image_folder(images, recipe.size, recipe.images, recipe.seed)
        data = prepare_data(images, vae, settings, cache, vae_id="pixel-space",
                            encode_text=lambda caption: demo_model.conditioning(contexts[int(caption)]),
                            text_id="demo-count-contexts")
        trainer = Trainer(model, fresh_adapter(model, "lite", None, settings), data, settings,
                          base_model_id="selfcascade-demo")
        before = trainer.fixed_batch_loss()
        trainer.run()
        after = trainer.fixed_batch_loss()
    return trainer.adapter, before, after
