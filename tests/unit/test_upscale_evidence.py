"""The upscale evidence: disc centres and colour metrics on known answers, the evaluation's plumbing at toy size."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfcascade.benchmarks.evidence import disc_family, metrics, upscale_evaluate
from selfcascade.nodes.upscale_nodes import SelfCascadeUpscale

REPO = Path(__file__).resolve().parents[2]
COUNTS = [1, 2, 3] * 4


@pytest.mark.parametrize("size", [32, 64, 128])
def test_centres_are_the_scenes_disc_centres_at_every_size(size):
    scenes = disc_family.sample_scenes(COUNTS, np.random.default_rng(4))
    images = disc_family.render(scenes, size)
    centres = metrics.object_centres(images)
    assert [len(c) for c in centres] == metrics.count_objects(images) == COUNTS
    for found, expected, count in zip(centres, scenes.centres.numpy(), COUNTS):
        distance = metrics.centre_displacement(expected[:count], found)
        assert distance < 0.1 / disc_family.NATIVE_SIZE  # a tenth of an input pixel


def test_displacement_is_the_mean_distance_to_the_nearest_found_centre():
    reference = np.array([[0.2, 0.2], [0.8, 0.8]])
    found = np.array([[0.2, 0.3], [0.8, 0.8], [0.5, 0.5]])
    assert metrics.centre_displacement(reference, found) == pytest.approx(0.05)
    assert metrics.centre_displacement(reference, reference) == 0.0
    assert np.isnan(metrics.centre_displacement(reference, np.zeros((0, 2))))


def test_colour_and_tone_see_a_cast_a_contrast_loss_and_a_smoothed_background_but_not_a_resize():
    inputs = disc_family.render(disc_family.sample_scenes(COUNTS, np.random.default_rng(5)), 32)
    resized = torch.nn.functional.interpolate(inputs, size=128, mode="nearest")
    shift, contrast, texture = upscale_evaluate.colour_and_tone(resized, inputs)
    assert np.allclose(shift, 0.0, atol=1e-6) and np.allclose(contrast, 1.0) and np.allclose(texture, 1.0)

    cast = resized.clone()
    cast[:, 0] += 9.0 / 255.0
    assert np.allclose(upscale_evaluate.colour_and_tone(cast, inputs)[0], 3.0)  # 9 levels on one of three channels
    mean = resized.mean((-2, -1), keepdim=True)
    assert np.allclose(upscale_evaluate.colour_and_tone(mean + 0.5 * (resized - mean), inputs)[1], 0.5)
    # the background's faint texture smoothed away, discs untouched: texture drops, colour stays
    smooth = resized.clone()
    smooth[:, :, :, :] = torch.where(resized.amax(1, keepdim=True) - resized.amin(1, keepdim=True) > 0.3, resized,
                                     torch.full_like(resized, disc_family.GREY))
    shift, contrast, texture = upscale_evaluate.colour_and_tone(smooth, inputs)
    assert np.all(texture < 0.2) and np.all(shift < 1.0) and np.all(contrast > 0.9)


def test_the_evidence_evaluates_the_nodes_default_k():
    default = next(i.default for i in SelfCascadeUpscale.define_schema().inputs if i.id == "k")
    assert upscale_evaluate.NODE_DEFAULT_K == default
    assert default in upscale_evaluate.UpscaleEvalSettings().ks_at_4x
    assert default in upscale_evaluate.UpscaleEvalSettings().ks_at_16x


@pytest.mark.slow
def test_quick_evaluation_writes_every_row_with_intervals(tmp_path):
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "evidence" / "upscale_evaluate.py"), "--quick",
                    "--out", str(tmp_path)], check=True, cwd=REPO, capture_output=True)
    payload = json.loads((tmp_path / "upscale_results.json").read_text())
    methods = {upscale_evaluate.BICUBIC, upscale_evaluate.HIRES, upscale_evaluate.UPSCALE, upscale_evaluate.ADAPTER}
    for scale in (2, 4):
        assert {row["method"] for row in payload["rows"] if row["scale"] == scale} == methods
    for row in payload["rows"]:
        for name in ("count_kept", "extra_objects", "centre_shift_px", "hf_ratio", "patch_fd", "colour_shift_levels",
                     "contrast_ratio", "background_texture_ratio"):
            estimate = row[name]
            assert estimate["low"] - 1e-9 <= estimate["value"] <= estimate["high"] + 1e-9, (row["label"], name, estimate)
        if row["method"] == upscale_evaluate.BICUBIC:
            assert row["count_kept"]["value"] == 1.0  # resizing keeps the discs, and the counter sees them
            assert row["colour_shift_levels"]["value"] < 0.5
    assert len(payload["comparisons"]) == 6 and all(0.0 <= c["p_holm"] <= 1.0 for c in payload["comparisons"])
    table = (tmp_path / "upscale_results.md").read_text()
    assert "N = 3 real renders" in table and table.count("| Bicubic |") == 2
    with Image.open(tmp_path / "upscale_samples.png") as sheet:
        assert sheet.height == (2 + 4) * (128 + 4)  # inputs, renders, four rows at 16x area


def test_quick_mode_refuses_to_overwrite_the_committed_evidence():
    with pytest.raises(SystemExit):
        upscale_evaluate.parse_args(["--quick"])
