"""Folders of random-noise images for the training tests (the node, the CLI and the dataset cache).

Test-only, like the rest of the tiny pack: training needs real image files, their content does not
matter, and each file is seeded by its index so every run reads the same pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_noise_images(folder: Path, count: int, size: tuple[int, int] = (72, 80)) -> Path:
    """``count`` PNGs of seeded noise, ``size`` = (height, width), named ``image0.png``, ``image1.png``, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 255, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index}.png")
    return folder
