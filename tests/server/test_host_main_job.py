"""The main job's prompt runs on the host: base latent at native size, a cascade stage, a saved PNG."""
from __future__ import annotations

import sys

import pytest

from harness import REPO, ComfyClient

sys.path.insert(0, str(REPO / "scripts"))
from main_job import cascade_prompt  # noqa: E402


@pytest.mark.slow
def test_main_job_prompt_saves_image_at_target_size(comfy: ComfyClient):
    # 576 px: the smallest cascade above the tiny SD1.5's native 512 px, to keep the test fast
    graph, sampler, save = cascade_prompt(width=576, height=576, steps=2, seed=0)

    result = comfy.run(graph)

    assert [image.size for image in result.images(save.id)] == [(576, 576)]
    report = result.text(sampler.id).splitlines()
    assert [line.split(",")[0] for line in report[:2]] == ["base: 512x512", "stage 1: 576x576"]
