"""The disc family: one to three coloured discs on a finely textured grey background.

Deliberately simple (one background grey, saturated disc colours), so that a model trained in
about ten CPU minutes learns it well enough for its counts and details to mean something.

A scene is continuous (disc centres and radii in units of the frame, texture wave vectors in
cycles per frame), so one scene renders at any resolution. Every render integrates the scene
through the same pixel response, a Gaussian of ``PIXEL_BLUR`` pixels of *that* render (a camera's
anti-aliasing filter), and does so analytically: disc edges are error functions, the texture is
cosines damped by the filter's transfer function. The texture has two octaves whose periods are
1.5 and 0.75 pixels of the 32x32 frame. At 32x32 the filter wipes both out (< 5 % amplitude); at
64x64 the first is resolved; at 128x128 both are. So a real higher-resolution sample of the
family holds detail that no 32x32 sample shows, and the object count is the same at every size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

NATIVE_SIZE = 32
COUNTS = (1, 2, 3)
MAX_DISCS = max(COUNTS)
PIXEL_BLUR = 0.6  # std of the pixel response, in pixels of the render
TEXTURE_PERIODS = (1.5, 0.75)  # in pixels of the 32x32 frame
TEXTURE_AMPLITUDE = 0.1
RADIUS_RANGE = (3.0, 5.0)  # in pixels of the 32x32 frame
DISC_GAP = 2.5  # least edge-to-edge distance between discs, pixels of the 32x32 frame
BORDER = 1.0  # least distance from a disc to the frame edge, pixels of the 32x32 frame
GREY = 0.45  # background level, before the texture
SATURATION_RANGE = (0.8, 1.0)
VALUE_RANGE = (0.8, 1.0)


@dataclass(frozen=True)
class Scenes:
    """A batch of scenes; absent discs have radius 0."""

    counts: torch.Tensor  # (B,) int
    centres: torch.Tensor  # (B, MAX_DISCS, 2) x, y in frame units
    radii: torch.Tensor  # (B, MAX_DISCS) frame units
    colours: torch.Tensor  # (B, MAX_DISCS, 3) RGB in [0, 1]
    wave_vectors: torch.Tensor  # (B, octaves, 2) cycles per frame
    phases: torch.Tensor  # (B, octaves) radians


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> list[float]:
    channel = [(n + hue * 6.0) % 6.0 for n in (5.0, 3.0, 1.0)]
    return [value - value * saturation * max(0.0, min(k, 4.0 - k, 1.0)) for k in channel]


def _place_discs(count: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Non-touching discs inside the frame, by rejection (frame units)."""
    unit = 1.0 / NATIVE_SIZE
    while True:
        discs: list[tuple[float, float, float]] = []
        for _ in range(100):
            radius = rng.uniform(*RADIUS_RANGE) * unit
            low, high = radius + BORDER * unit, 1.0 - radius - BORDER * unit
            x, y = rng.uniform(low, high), rng.uniform(low, high)
            if all(math.hypot(x - ox, y - oy) >= radius + orad + DISC_GAP * unit for ox, oy, orad in discs):
                discs.append((x, y, radius))
                if len(discs) == count:
                    return discs


def sample_scenes(counts: Sequence[int], rng: np.random.Generator) -> Scenes:
    """One random scene per requested count."""
    batch = len(counts)
    centres = torch.zeros(batch, MAX_DISCS, 2, dtype=torch.float64)
    radii = torch.zeros(batch, MAX_DISCS, dtype=torch.float64)
    colours = torch.zeros(batch, MAX_DISCS, 3, dtype=torch.float64)
    for b, count in enumerate(counts):
        if count not in COUNTS:
            raise ValueError(f"count {count} is outside the family's {COUNTS}")
        for d, (x, y, radius) in enumerate(_place_discs(count, rng)):
            centres[b, d] = torch.tensor([x, y])
            radii[b, d] = radius
            colours[b, d] = torch.tensor(_hsv_to_rgb(rng.uniform(), rng.uniform(*SATURATION_RANGE), rng.uniform(*VALUE_RANGE)))
    octaves = len(TEXTURE_PERIODS)
    angles = torch.from_numpy(rng.uniform(0.0, math.pi, size=(batch, octaves)))
    frequencies = torch.tensor([NATIVE_SIZE / period for period in TEXTURE_PERIODS], dtype=torch.float64)
    wave_vectors = torch.stack([angles.cos(), angles.sin()], dim=-1) * frequencies[None, :, None]
    phases = torch.from_numpy(rng.uniform(0.0, 2.0 * math.pi, size=(batch, octaves)))
    return Scenes(torch.tensor(list(counts)), centres, radii, colours, wave_vectors, phases)


def render(scenes: Scenes, size: int) -> torch.Tensor:
    """Images (B, 3, size, size) in [0, 1]: each pixel integrates the scene through the pixel response."""
    blur = PIXEL_BLUR / size  # frame units
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")

    phase = (2.0 * math.pi * (scenes.wave_vectors[..., 0, None, None] * x + scenes.wave_vectors[..., 1, None, None] * y)
             + scenes.phases[..., None, None])
    damping = torch.exp(-2.0 * math.pi**2 * blur**2 * scenes.wave_vectors.square().sum(-1))
    texture = (TEXTURE_AMPLITUDE * damping[..., None, None] * phase.cos()).sum(1)  # (B, H, W)
    image = (GREY + texture)[:, None].expand(-1, 3, -1, -1).clone()

    for d in range(MAX_DISCS):
        distance = torch.hypot(x - scenes.centres[:, d, 0, None, None], y - scenes.centres[:, d, 1, None, None])
        coverage = 0.5 * torch.erfc((distance - scenes.radii[:, d, None, None]) / (blur * math.sqrt(2.0)))
        coverage = coverage * (scenes.radii[:, d, None, None] > 0)
        image = image * (1.0 - coverage[:, None]) + scenes.colours[:, d, :, None, None] * coverage[:, None]
    return image.clamp(0.0, 1.0).float()
