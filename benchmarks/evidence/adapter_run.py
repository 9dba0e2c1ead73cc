"""Train an upsampler adapter for a demo model with the repo's trainer, on real renders.

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
    k: float = 0.7  # the largest t trained, as a fraction of the model's time axis (the trainer's K)
    variant: str = "lite"  # dit-lite for the flow demo model


def write_image_folder(folder: Path, size: int, images: int, seed: int) -> None:
    """``images`` real renders at ``size`` (counts cycling 1, 2, 3), each with its count as caption."""
    counts = [disc_family.COUNTS[i % len(disc_family.COUNTS)] for i in range(images)]
    renders = disc_family.render(disc_family.sample_scenes(counts, np.random.default_rng(seed)), size)
    for index, (count, image) in enumerate(zip(counts, renders)):
        pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:04d}.png")
        (folder / f"{index:04d}.txt").write_text(str(count), encoding="utf-8")


def train_adapter(model, contexts: dict, vae, recipe: AdapterRecipe, conditioning=demo_model.conditioning,
                  base_model_id: str = "selfcascade-demo") -> tuple[UpsamplerAdapter, float, float]:
    """An adapter trained per ``recipe`` (prompts through the demo model's ``conditioning``); returns it and the
    trainer's fixed-batch loss before and after."""
    settings = TrainingSettings(width=recipe.size, height=recipe.size, steps=recipe.steps, k=recipe.k,
                                learning_rate=recipe.learning_rate, batch_size=recipe.batch_size, seed=recipe.seed)
    with tempfile.TemporaryDirectory(prefix="selfcascade-evidence-") as workdir:
        images, cache = Path(workdir) / "images", TrainingCache(Path(workdir) / "cache")
        images.mkdir()
        write_image_folder(images, recipe.size, recipe.images, recipe.seed)
        data = prepare_data(images, vae, settings, cache, vae_id="pixel-space",
                            encode_text=lambda caption: conditioning(contexts[int(caption)]),
                            text_id="demo-count-contexts")
        trainer = Trainer(model, fresh_adapter(model, recipe.variant, None, settings), data, settings,
                          base_model_id=base_model_id)
        before = trainer.fixed_batch_loss()
        trainer.run()
        after = trainer.fixed_batch_loss()
    return trainer.adapter, before, after
