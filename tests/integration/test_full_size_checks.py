"""The full-size benchmark's own checks, on the tiny SDXL: where an adapter enters the UNet, and what its call costs."""
from __future__ import annotations

import pytest
from tiny_pack.models import build_conditioning, build_model

from selfcascade.benchmarks.fullsize import expected_points, injection_deltas, profile_adapter_call
from selfcascade.benchmarks.models import ModelSet
from selfcascade.benchmarks.sampling_bench import random_adapter


@pytest.mark.parametrize("variant", ["official-sdxl", "lite"])
def test_injection_check_finds_exactly_the_adapters_points(variant):
    model = build_model("sdxl")
    adapter = random_adapter(model, variant)
    changes = injection_deltas(model, adapter, size=64)
    changed = [name for name, value in changes.items() if value > 0]
    assert changed == expected_points(adapter)  # official: backbone after input 3, 6, 8 and middle; lite: skips
    assert changed == (["input 3", "input 6", "input 8", "middle"] if variant == "official-sdxl" else ["middle"])
    assert len(changes) == len(model.model.diffusion_model.input_blocks) + 1


def test_profile_of_an_adapter_call_attributes_its_parts():
    model = build_model("sdxl")
    models = ModelSet("sdxl", model, None, build_conditioning("sdxl"), build_conditioning("sdxl", seed=1), "tiny")
    seconds, text = profile_adapter_call(models, random_adapter(model, "official-sdxl"), (64, 128))
    parts = ("pivot pass", "adapter modules", "weight casts", "backbone additions", "output block 0 addition")
    assert all(seconds[part] > 0 for part in parts)
    assert seconds["pivot pass"] + seconds["adapter modules"] < seconds["official adapter"]
    assert "### official adapter" in text and "_pivot_features" in text
