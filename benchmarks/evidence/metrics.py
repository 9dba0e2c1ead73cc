"""What the evidence measures on generated images (B, 3, H, W) in [0, 1].

* Object count: connected components (``scipy.ndimage.label``) of saturated pixels. The family's
  discs are saturated and its background is grey at every resolution, so this is exact on real
  renders (checked by the "real renders" row of the table). Every saturated blob of at least
  ``MIN_OBJECT_AREA`` pixels is an object, whatever its size: a model that repeats discs at its
  training scale draws small discs at high resolution, and those are the duplicates to count.
  Their centres of mass locate them, so an upscaler's output can be checked against its input's
  discs (``centre_displacement``).
* Detail: the power above the 32x32 frame's Nyquist frequency (detail no native sample can hold)
  as a ratio to real renders of the family at the same size (1 = as much fine detail as real), and
  a patch Fréchet distance: Gaussian fits of mean-removed 8x8 luminance patches of the generated
  and the real set, the analogue of the paper's pFID.

Both detail metrics are set-level statistics; ``high_frequency_powers`` and ``patch_moments`` keep
what each image contributes, so a bootstrap over images recomputes them without the images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

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


def object_centres(images: torch.Tensor) -> list[np.ndarray]:
    """Per image, the centres (x, y in frame units, 0..1) of the objects ``count_objects`` counts.

    Each centre is the saturation-weighted centre of mass of its blob: sub-pixel, as edges are anti-aliased.
    """
    saturation = (images.amax(1) - images.amin(1)).cpu().numpy()
    centres = []
    for weights in saturation:
        labels, found = scipy.ndimage.label(weights > SATURATION_THRESHOLD)
        areas = np.bincount(labels.ravel(), minlength=found + 1)[1:]
        kept = [index + 1 for index in np.flatnonzero(areas >= MIN_OBJECT_AREA)]
        yx = np.array(scipy.ndimage.center_of_mass(weights, labels, kept), dtype=float).reshape(-1, 2)
        centres.append((yx[:, ::-1] + 0.5) / np.array([weights.shape[1], weights.shape[0]]))
    return centres


def centre_displacement(reference: np.ndarray, found: np.ndarray) -> float:
    """Mean distance from each reference centre to the nearest found one (frame units); NaN if none was found."""
    if len(reference) == 0 or len(found) == 0:
        return float("nan")
    distances = np.linalg.norm(reference[:, None, :] - found[None, :, :], axis=-1)
    return float(distances.min(axis=1).mean())


def count_fidelity(counts: Sequence[int], prompted: Sequence[int]) -> float:
    """Share of images with exactly the prompted number of objects."""
    return float(np.mean([c == p for c, p in zip(counts, prompted)]))


def duplication_rate(counts: Sequence[int], prompted: Sequence[int]) -> float:
    """Share of images with more objects than prompted (the failure of direct high-resolution sampling)."""
    return float(np.mean([c > p for c, p in zip(counts, prompted)]))


def _luminance(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bchw,c->bhw", images.double().cpu(), _LUMA.double())


def high_frequency_powers(images: torch.Tensor) -> np.ndarray:
    """Spectral power per pixel above the native frame's Nyquist frequency (luminance), one value per image."""
    size = images.shape[-1]
    luma = _luminance(images)
    spectrum = torch.fft.fft2(luma - luma.mean(dim=(-2, -1), keepdim=True)).abs().square() / size**2
    frequency = torch.fft.fftfreq(size, d=1.0 / size).abs()  # cycles per frame
    beyond_native = torch.maximum(frequency[:, None], frequency[None, :]) > NATIVE_SIZE / 2
    return (spectrum[:, beyond_native].sum(-1) / size**2).numpy()


def high_frequency_ratio(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Fine-detail power of the generated images over that of real renders (1 = as detailed as real)."""
    return float(high_frequency_powers(generated).mean() / high_frequency_powers(real).mean())


@dataclass(frozen=True)
class PatchMoments:
    """Per image: the number of patches, their sum and the sum of their outer products (float64)."""

    counts: np.ndarray  # (B,)
    sums: np.ndarray  # (B, PATCH * PATCH)
    outer: np.ndarray  # (B, PATCH * PATCH, PATCH * PATCH)

    def gaussian(self, indices: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the patches of the images ``indices`` (all by default; repeats count twice)."""
        if indices is None:
            indices = np.arange(len(self.counts))
        n = self.counts[indices].sum()
        mean = self.sums[indices].sum(0) / n
        covariance = (self.outer[indices].sum(0) - n * np.outer(mean, mean)) / (n - 1)
        return mean, covariance


def patch_moments(images: torch.Tensor) -> PatchMoments:
    """Moments of the mean-removed 8x8 luminance patches of each image."""
    luma = _luminance(images)[:, None]
    patches = torch.nn.functional.unfold(luma, PATCH, stride=PATCH_STRIDE).transpose(1, 2)  # (B, patches, 64)
    patches = (patches - patches.mean(dim=2, keepdim=True)).numpy()
    return PatchMoments(np.full(len(patches), patches.shape[1], dtype=np.int64), patches.sum(1),
                        np.einsum("bpi,bpj->bij", patches, patches))


class FrechetToReference:
    """Fréchet distance (x 1000) of patch Gaussians to one fixed reference, cheap to repeat on resamples.

    tr(sqrt(C_g C_r)) = sum of sqrt(eigenvalues of R C_g R) with R = sqrt(C_r), a symmetric matrix,
    so each distance costs one symmetric eigendecomposition once R is known.
    """

    def __init__(self, reference: PatchMoments):
        self.mean, covariance = reference.gaussian()
        self.trace = float(np.trace(covariance))
        self.root = scipy.linalg.sqrtm(covariance).real

    def __call__(self, generated: PatchMoments, indices: Optional[np.ndarray] = None) -> float:
        mean, covariance = generated.gaussian(indices)
        eigenvalues = np.linalg.eigvalsh(self.root @ covariance @ self.root)
        cross = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
        distance = np.square(mean - self.mean).sum() + np.trace(covariance) + self.trace - 2.0 * cross
        return float(max(distance, 0.0) * 1000.0)


def patch_frechet_distance(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance between Gaussian fits of mean-removed 8x8 luminance patches (x 1000)."""
    return FrechetToReference(patch_moments(real))(patch_moments(generated))
