"""The evidence pipeline end to end at toy size (plumbing, not numbers), and the demo model's reproducibility."""
import dataclasses
import json
import math

import pytest
import safetensors
import torch
from PIL import Image

from selfcascade.benchmarks.evidence import evaluate, train_base_model
from selfcascade.models.demo import demo_model
from selfcascade.sampling.families import detect_family, native_size_for_aspect

LOG = demo_model.WEIGHTS.parent / train_base_model.LOG_NAME
METHODS = {evaluate.REAL, evaluate.DIRECT, evaluate.UPSCALE, evaluate.HIRES, evaluate.CASCADE, evaluate.ADAPTER}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_evaluation_writes_every_row_with_metrics_in_range(tmp_path):
    evaluate.main(["--quick", "--out", str(tmp_path)])

    payload = json.loads((tmp_path / "results.json").read_text())
    rows = payload["rows"]
    for scale in (2, 4):
        assert {r["method"] for r in rows if r["scale"] == scale} == METHODS
    assert [r["method"] for r in rows if r["scale"] == 1] == [evaluate.NATIVE]
    for row in rows:
        assert row["n"] == payload["settings"]["n"]
        assert 0.0 <= row["count_fidelity"] <= 1.0 and 0.0 <= row["duplication_rate"] <= 1.0
        assert row["count_fidelity"] + row["duplication_rate"] <= 1.0
        if row["scale"] > 1:
            assert math.isfinite(row["hf_ratio"]) and row["hf_ratio"] >= 0.0 and row["patch_fd"] >= 0.0
        if row["method"] == evaluate.REAL:
            assert row["count_fidelity"] == 1.0  # the counter is exact on the family's real renders
        elif row["scale"] > 1:
            assert row["relative_time"] > 0.0
    assert all(r["trained_params"] > 0 and r["training_steps"] > 0 for r in rows if r["method"] == evaluate.ADAPTER)

    table = (tmp_path / "results.md").read_text()
    assert "N = 3" in table and "seed 0" in table
    for label in evaluate.METHOD_LABELS.values():
        assert table.count(f"| {label} |") == 2  # one row at 4x and one at 16x area
    with Image.open(tmp_path / "samples.png") as sheet:
        assert sheet.height == len(payload["sample_sheet_rows"]) * (128 + 4)


def test_quick_mode_refuses_to_overwrite_the_committed_evidence():
    with pytest.raises(SystemExit):
        evaluate.main(["--quick"])


def test_training_from_the_seed_reproduces_the_first_logged_losses(one_thread):
    config, rows = train_base_model.read_log(LOG)
    logged = []
    train_base_model.train(config, stop_after=rows[0].step, on_log=logged.append)
    assert logged[0].step == rows[0].step
    assert logged[0].loss == pytest.approx(rows[0].loss, rel=1e-3)


def test_shipped_weights_record_the_logged_training_run():
    config, rows = train_base_model.read_log(LOG)
    with safetensors.safe_open(str(demo_model.WEIGHTS), "pt") as handle:
        recorded = json.loads(handle.metadata()["config"])
    assert recorded == dataclasses.asdict(config) and rows[-1].step == config.steps
    assert rows[-1].loss < rows[0].loss / 10


def test_demo_model_is_its_own_family_in_pixel_space():
    model, contexts = demo_model.load_weights()
    family = detect_family(model)
    assert (family.name, family.latent_factor, family.native_width, family.native_height) == ("selfcascade-demo", 1, 32, 32)
    assert native_size_for_aspect(family, 128, 128) == (32, 32)
    assert sorted(contexts) == [0, 1, 2, 3]
    vae = demo_model.pixel_vae()
    image = torch.rand(1, 8, 8, 3)
    latent = vae.encode(image)
    assert latent.shape == (1, 3, 8, 8) and torch.allclose(vae.decode(latent), image, atol=1e-6)
