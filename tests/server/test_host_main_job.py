"""The README's main job: the shipped demo workflow's API export runs on the host and draws its discs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import ndimage

from harness import REPO, ComfyClient

sys.path.insert(0, str(REPO / "scripts"))
from main_job import WORKFLOW, load_api_prompt, node_of  # noqa: E402


def test_demo_workflow_cascades_to_128_px_and_draws_discs(comfy: ComfyClient):
    prompt = load_api_prompt(WORKFLOW)
    sampler_id, _ = node_of(prompt, "SelfCascadeKSampler")
    save_id, _ = node_of(prompt, "SaveImage")

    result = comfy.run(prompt)

    (image,) = result.images(save_id)
    assert image.size == (128, 128)
    report = [line.split(",")[0] for line in result.text(sampler_id).splitlines()]
    assert report == ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # discs are coloured, the background grey
    assert ndimage.label(saturated)[1] >= 1, "the demo model drew no disc"


def test_malformed_workflow_files_are_refused(tmp_path):
    for text in ("[]", '{"1": {"class_type": 3, "inputs": {}}}', "{}"):
        path = tmp_path / "bad.json"
        path.write_text(text)
        run = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); "
                              f"import main_job, pathlib; main_job.load_api_prompt(pathlib.Path({str(path)!r}))"],
                             capture_output=True, text=True)
        assert run.returncode != 0 and "not an API-format prompt" in run.stderr
