"""The evidence pipeline end to end at toy size (plumbing, not numbers), and the demo model's reproducibility."""
import dataclasses
import json

import pytest
import safetensors
import torch
from PIL import Image

from selfcascade.benchmarks.evidence import evaluate, generation, plot, train_base_model
from selfcascade.models.demo import demo_model
from selfcascade.sampling.families import detect_family, native_size_for_aspect

LOG = demo_model.WEIGHTS.parent / train_base_model.LOG_NAME
HEADLINE = {"real", "direct", "upscale", "hires-0.5", "hires-0.7", "cascade-0.7", "adapter-0.7"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("evidence")
    evaluate.main(["--quick", "--out", str(out)])
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow  # the quick evaluation: about a CPU-minute
def test_quick_evaluation_writes_every_table_with_estimates_in_range(quick):
    out, results = quick
    tables = {table["name"]: table for table in results["tables"]}
    assert set(tables) == {"native", "main-4x", "main-16x", "replication-16x", "k-study-4x", "k-study-16x"}
    for area in ("4x", "16x"):
        recipe = results["recipes"][area]["method"]
        assert {r["method"] for r in tables[f"main-{area}"]["rows"]} == HEADLINE | {recipe}
        assert {r["method"] for r in tables[f"k-study-{area}"]["rows"]} >= {"real", "cascade-0.5", "cascade-0.7", recipe}
    assert {r["method"] for r in tables["replication-16x"]["rows"]} == {r["method"] for r in tables["main-16x"]["rows"]}
    assert "cascade-0.7-0.5" in {r["method"] for r in tables["k-study-16x"]["rows"]}  # per-stage K only where 2 stages

    for table in results["tables"]:
        for row in table["rows"]:
            assert row["n"] == table["n"] == len(row["found"]) == len(table["prompted"])
            for metric in ("count_fidelity", "duplication"):
                estimate = row[metric]
                assert 0.0 <= estimate["low"] <= estimate["value"] <= estimate["high"] <= 1.0
            if row["method"] == "real":
                assert row["count_fidelity"]["value"] == 1.0  # the counter is exact on the family's real renders
            elif table["scale"] > 1:
                assert row["relative_time"] > 0.0 and row["patch_fd"]["low"] <= row["patch_fd"]["high"]
        assert all(0.0 <= c["p"] <= c["p_holm"] <= 1.0 for c in table["comparisons"])
    assert [a["size"] for a in results["adapters"]] == [64, 128] and all(a["steps"] > 0 for a in results["adapters"])
    cost = results["cost"]
    assert cost["generation_cpu_seconds"] > 0.0 and cost["wall_seconds"] > 0.0

    text = (out / "results.md").read_text()
    assert text.count("| Method |") == 5 and "**Self-Cascade" in text  # main, replication and the two K studies; the recipe in bold
    with Image.open(out / "samples.png") as sheet:
        assert sheet.height == len(results["sample_sheet_rows"]) * (128 + 4)
    with Image.open(out / "k_study.png") as picture:
        assert picture.size == plot.k_study_plot(results).size


@pytest.mark.slow  # the quick evaluation: about a CPU-minute
def test_stages_run_the_steps_of_their_own_k(quick):
    _, results = quick
    steps = results["settings"]["steps"]
    study = next(table for table in results["tables"] if table["name"] == "k-study-16x")
    by_method = {row["method"]: row["stage_steps"] for row in study["rows"]}
    assert by_method["cascade-0.7"][0] == steps and len(by_method["cascade-0.7"]) == 3  # 32 -> 64 -> 128
    assert by_method["cascade-0.7-0.5"][:2] == by_method["cascade-0.7"][:2]
    assert by_method["cascade-0.7-0.5"][2] == by_method["cascade-0.5"][2] < by_method["cascade-0.7"][2]


@pytest.mark.slow  # a spawned worker imports torch and ComfyUI
def test_a_batch_is_the_same_in_a_spawned_worker_as_in_this_process(one_thread):
    """What makes the result independent of the number of workers: each batch is deterministic wherever it runs."""
    batch = generation.Batch(generation.Method(generation.CASCADE, k=0.7, later_k=0.4), 128, 2, 2, 7,
                             generation.Sampling(10, 2.0, "euler", "normal"), keep_samples=2)
    here = generation.run_batch(batch)
    with evaluate.executor_for(2) as pool:
        there = pool.submit(generation.run_batch, batch).result()
    assert here.found == there.found and here.stage_steps == there.stage_steps
    assert here.stage_steps[0] == 10 and here.stage_steps[2] < here.stage_steps[1]  # the later stage's own, lower K
    assert torch.equal(here.samples, there.samples)


def test_non_default_settings_never_overwrite_the_committed_evidence():
    for argv in (["--quick"], ["--main-n", "3", "3"], ["--seed", "1"]):
        with pytest.raises(SystemExit):
            evaluate.parse_args(argv)
    assert evaluate.parse_args(["--workers", "1"])[0] == dataclasses.replace(evaluate.EvalSettings(), workers=1)


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
