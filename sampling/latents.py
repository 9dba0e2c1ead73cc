"""The base latent as the host's own KSampler prepares it, on every host version.

Core's ``common_ksampler`` hands ``comfy.sample.fix_empty_latent_channels`` the latent's
``downscale_ratio_spacial`` / ``downscale_ratio_temporal`` where that function takes them (newer
hosts: an empty latent made at 8 px per cell is resized to the model's own ratio, Flux.2's 16, and
the latent format's ``fix_empty_latent`` is applied to it inside the same function) and pops them
from its output. Older hosts take neither and keep them. The signature is inspected once per host
function, so the base stage equals the host's KSampler on old and new hosts alike.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

import comfy.sample

RATIO_KEYS = ("downscale_ratio_spacial", "downscale_ratio_temporal")


@functools.lru_cache(maxsize=None)
def _ratio_keys_taken(function: Callable) -> tuple[str, ...]:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # not introspectable: call it as the oldest hosts do
        return ()
    return tuple(key for key in RATIO_KEYS if key in parameters)


def host_ratio_keys() -> tuple[str, ...]:
    """The latent keys this host's ``fix_empty_latent_channels`` takes (none before ComfyUI 0.10)."""
    return _ratio_keys_taken(comfy.sample.fix_empty_latent_channels)


def prepare_base_latent(model, latent: dict) -> dict:
    """A copy of ``latent`` whose samples are what core's KSampler samples, without the keys it consumed.

    Idempotent: a prepared latent has the model's channels and no ratio keys left to apply.
    """
    keys = host_ratio_keys()
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"], **{key: latent.get(key) for key in keys})
    prepared = {key: value for key, value in latent.items() if key not in keys}
    prepared["samples"] = samples
    return prepared
