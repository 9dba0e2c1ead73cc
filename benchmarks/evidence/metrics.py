"""What the evidence measures on generated images (B, 3, H, W) in [0, 1].

* Object count: connected components (``scipy.ndimage.label``) of saturated pixels. The family's
  discs are saturated and its background is grey at every resolution, so this is exact on real
  renders (checked by the "real renders" row of the table). Every saturated blob of at least
  ``MIN_OBJECT_AREA`` pixels is an object, whatever its size: a model that repeats discs at its
  training scale draws small discs at high resolution, and those are the duplicates to count.
* Detail: the power above the 32x32 frame's Nyquist frequency (detail no native sample can hold)
  as a ratio to real renders of the family at the same size (1 = as much fine detail as real), and
  a patch Fréchet distance: Gaussian fits of mean-removed 8x8 luminance patches of the generated
  and the real set, the analogue of the paper's pFID.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.ndimage
import torch

from .disc_family import NATIVE_SIZE

SATURATION_THRESHOLD = 0.3  # max - min of RGB; discs have >= 0.64, the grey background 0
MIN_OBJECT_AREA = 8  # pixels, at any size: smaller saturated specks are noise (the demo model's discs cover >= 13)
PATCH = 8
PATCH_STRIDE = 4
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def count_objects(images: torch.Tensor) -> list[int]:
    """Objects per image: saturated connected components of at least ``MIN_OBJECT_AREA`` pixels."""
    saturated = (images.amax(1) - images.amin(1) > SATURATION_THRESHOLD).cpu().numpy()
    counts = []
    for mask in saturated:
        labels, found = scipy.ndimage.label(mask)
        areas = np.bincount(labels.ravel(), minlength=found + 1)[1:]
        counts.append(int((areas >= MIN_OBJECT_AREA).sum()))
    return counts


def count_fidelity(counts: Sequence[int], prompted: Sequence[int]) -> float:
    """Share of images with exactly the prompted number of objects."""
    return float(np.mean([c == p for c, p in zip(counts, prompted)]))


def duplication_rate(counts: Sequence[int], prompted: Sequence[int]) -> float:
    """Share of images with more objects than prompted (the failure of direct high-resolution sampling)."""
    return float(np.mean([c > p for c, p in zip(counts, prompted)]))


def _luminance(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bchw,c->bhw", images.double().cpu(), _LUMA.double())


def high_frequency_power(images: torch.Tensor) -> float:
    """Mean spectral power per pixel above the native frame's Nyquist frequency (luminance)."""
    size = images.shape[-1]
    luma = _luminance(images)
    spectrum = torch.fft.fft2(luma - luma.mean(dim=(-2, -1), keepdim=True)).abs().square() / size**2
    frequency = torch.fft.fftfreq(size, d=1.0 / size).abs()  # cycles per frame
    beyond_native = torch.maximum(frequency[:, None], frequency[None, :]) > NATIVE_SIZE / 2
    return float(spectrum[:, beyond_native].sum(-1).mean() / size**2)


def high_frequency_ratio(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Fine-detail power of the generated images over that of real renders (1 = as detailed as real)."""
    return high_frequency_power(generated) / high_frequency_power(real)


def _patches(images: torch.Tensor) -> np.ndarray:
    luma = _luminance(images)[:, None]
    patches = torch.nn.functional.unfold(luma, PATCH, stride=PATCH_STRIDE).transpose(1, 2).reshape(-1, PATCH * PATCH)
    return (patches - patches.mean(dim=1, keepdim=True)).numpy()


def patch_frechet_distance(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance between Gaussian fits of mean-removed 8x8 luminance patches (x 1000)."""
    a, b = _patches(generated), _patches(real)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    distance = np.square(mean_a - mean_b).sum() + np.trace(cov_a + cov_b - 2.0 * root)
    return float(max(distance, 0.0) * 1000.0)
