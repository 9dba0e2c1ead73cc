"""The README's main job: the shipped workflows' API exports through the host, and its command line.

The command-line tests run ``scripts/main_job.py`` as a user would (a subprocess with the host's
Python) and read only what it prints, its exit code and the files it names.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from checkpoints import write_sd15_checkpoint
from harness import PACK_NAME, REPO, ComfyClient

import main_job
from main_job import API_WORKFLOWS, UsageError, load_api_prompt, nodes_of

MAIN_JOB = REPO / "scripts" / "main_job.py"
KEPT_LOG = re.compile(r"\(server log kept: (?P<path>\S+server\.log)\)$")


def main_job_cli(*args: str, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MAIN_JOB), *args, "--output", str(output)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_demo_workflow_cascades_to_128_px_and_draws_discs(comfy: ComfyClient):
    prompt = load_api_prompt(API_WORKFLOWS / "self_cascade_demo.json")
    [(sampler_id, _)] = nodes_of(prompt, ("SelfCascadeKSampler",))
    [(save_id, _)] = nodes_of(prompt, ("SaveImage",))

    result = comfy.run(prompt)

    (image,) = result.images(save_id)
    assert image.size == (128, 128)
    report = [line.split(",")[0] for line in result.text(sampler_id).splitlines()]
    assert report == ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # discs are coloured, the background grey
    assert ndimage.label(saturated)[1] >= 1, "the demo model drew no disc"


def test_malformed_workflow_files_are_refused(tmp_path: Path):
    for text in ("[]", '{"1": {"class_type": 3, "inputs": {}}}', "{}"):
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(UsageError, match="not an API-format prompt"):
            load_api_prompt(path)


def test_every_shipped_workflow_has_an_api_export_the_main_job_can_run():
    shipped = {path.stem for path in (REPO / "workflows").glob("*.json")}
    assert {path.stem for path in API_WORKFLOWS.glob("*.json")} == shipped
    assert main_job.arguments(["--workflow", "wan21_video_tuning_free"]).workflow == "wan21_video_tuning_free"


def test_the_main_jobs_server_loads_this_pack_and_no_test_pack(tmp_path: Path):
    """Product, not test: the main job never imports the test harness nor links the tiny pack."""
    server = main_job.server_for(tmp_path, main_job.arguments([]))
    assert [link.name for link in (tmp_path / "custom_nodes").iterdir()] == [PACK_NAME]
    command = server.command()
    assert command[command.index("--whitelist-custom-nodes") + 1] == PACK_NAME
    imported = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import main_job; "
                               "print(sorted(m for m in sys.modules if m in ('harness', 'tiny_pack')))",
                               str(REPO / "scripts")], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"


@pytest.mark.parametrize("args, says", [
    (["--target", "2048"], "--target: '2048' is not WIDTHxHEIGHT"),
    (["--workflow", "no_such_workflow"], "invalid choice: 'no_such_workflow'"),
    (["--prompt", "a cat"], "--prompt does not apply to workflow self_cascade_demo"),
    (["--checkpoint", "/no/such/model.safetensors"], "no such file"),
    (["--workflow", "wan21_video_tuning_free", "--checkpoint", str(MAIN_JOB)], "not a model file"),
    (["--demo-model", "dit"], "--demo-model: invalid choice: 'dit'"),
    (["--workflow", "sd15_512_to_2048_tuning_free", "--demo-model", "flow"],
     "--demo-model does not apply to workflow sd15_512_to_2048_tuning_free"),
    (["--target", "0x0"], "--target 0x0: each side must be 64 to 16384 px"),
    (["--target", "32x2048"], "each side must be 64 to 16384 px"),
    (["--target", "20000x1024"], "each side must be 64 to 16384 px"),
    (["--workflow", "sd15_512_to_2048_tuning_free", "--target", "512x512"],
     "--target 512x512 is not larger than the workflow's base latent (its Empty Latent Image) 512x512: the workflow "
     "would run a single stage, no cascade; the smallest target that cascades is 520x520"),
])
def test_a_bad_argument_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], says: str):
    run = main_job_cli(*args, output=tmp_path)
    assert run.returncode == 2
    line = one_line(run.stderr)
    assert line.startswith("main_job: ") and says in line, line
    assert not list(tmp_path.iterdir()), "nothing may run on a bad argument"


def test_the_smallest_cascading_target_keeps_the_aspect_and_exceeds_the_base_area():
    assert main_job.smallest_cascading_target((512, 512), (512, 512), 8) == (520, 520)
    assert main_job.smallest_cascading_target((1024, 512), (512, 512), 8) == (728, 368)
    assert main_job.smallest_cascading_target((64, 64), (32, 32), 8) == (64, 64)  # never below the nodes' minimum
    width, height = main_job.smallest_cascading_target((1664, 960), (832, 480), 16)
    assert width * height > 832 * 480 and width % 16 == height % 16 == 0


def test_output_names_follow_the_size_made():
    prompt = load_api_prompt(API_WORKFLOWS / "sd15_512_to_2048_tuning_free.json")
    main_job.name_outputs_by_size(prompt, (1024, 1024))
    assert [node["inputs"]["filename_prefix"] for _, node in nodes_of(prompt, main_job.SAVERS)] == \
        ["selfcascade/sd15_1024"]
    prompt = load_api_prompt(API_WORKFLOWS / "self_cascade_demo.json")
    main_job.name_outputs_by_size(prompt, (192, 128))
    assert [node["inputs"]["filename_prefix"] for _, node in nodes_of(prompt, main_job.SAVERS)] == \
        ["selfcascade/demo_192x128"]


@pytest.mark.slow
def test_default_run_prints_the_stage_report_and_the_image(tmp_path: Path):
    run = main_job_cli("--seed", "3", output=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith(("base", "stage"))] == \
        ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]
    assert lines[-1].startswith("image: ")
    image = Path(lines[-1].removeprefix("image: "))
    assert image.parent.parent == tmp_path and Image.open(image).size == (128, 128)


def test_demo_model_option_runs_that_models_demo_workflow_at_its_own_settings():
    for architecture in ("flow", "unet"):
        args = main_job.arguments(["--demo-model", architecture])
        assert args.workflow == main_job.DEMO_WORKFLOWS[architecture]
        prompt = load_api_prompt(API_WORKFLOWS / f"{args.workflow}.json")
        main_job.apply_options(prompt, args)
        assert [node["inputs"]["architecture"] for _, node in nodes_of(prompt, ("SelfCascadeDemoModel",))] == \
            [architecture]


@pytest.mark.slow
def test_flow_demo_model_run_prints_the_stage_report_and_the_image(tmp_path: Path):
    run = main_job_cli("--demo-model", "flow", "--seed", "3", "--steps", "8", output=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith(("base", "stage"))] == \
        ["base: 32x32", "stage 1: 64x64", "stage 2: 128x128"]
    image = Path(lines[-1].removeprefix("image: "))
    assert image.parent.parent == tmp_path and Image.open(image).size == (128, 128)


@pytest.mark.slow
def test_a_rejected_prompt_is_one_line_naming_node_and_input_and_keeps_the_server_log(tmp_path: Path):
    run = main_job_cli("--steps", "0", output=tmp_path)
    assert run.returncode == 1
    line = one_line(run.stderr)
    assert "ComfyUI rejected the prompt: node " in line and "(SelfCascadeKSampler)" in line and "steps" in line
    log = Path(KEPT_LOG.search(line)["path"])
    try:
        text = log.read_text()
        assert PACK_NAME in text and "tiny_pack" not in text  # the product's server, not the test harness's
    finally:
        shutil.rmtree(log.parent)


@pytest.mark.slow
def test_a_users_checkpoint_runs_in_place_with_prompt_and_target(tmp_path: Path):
    models = tmp_path / "my models"  # a space: paths reach the server intact
    models.mkdir()
    checkpoint = write_sd15_checkpoint(models / "my_sd15.safetensors")
    output = tmp_path / "output"

    run = main_job_cli("--checkpoint", str(checkpoint), "--prompt", "a lighthouse", "--negative", "fog",
                       "--target", "576x576", "--steps", "2", output=output)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "queueing workflows/api/sdxl_1024_to_2048_tuning_free.json" in run.stdout
    stages = [line.split(",")[0] for line in run.stdout.splitlines() if line.startswith(("base", "stage"))]
    assert stages == ["base: 512x512", "stage 1: 576x576"]  # SD1.5's native 512 from the file, then the target
    image = Path(run.stdout.strip().splitlines()[-1].removeprefix("image: "))
    assert Image.open(image).size == (576, 576)
    assert image.name.startswith("sdxl_576_")  # named by the size made, not the workflow's 2048
    assert sorted(path.name for path in models.iterdir()) == ["my_sd15.safetensors"]  # read in place, not copied

    run = main_job_cli("--checkpoint", str(checkpoint), "--target", "512x512", output=output)
    assert run.returncode == 2
    line = one_line(run.stderr)
    assert ("--target 512x512 is not larger than the model's native size (sd15) 512x512: the workflow would run a "
            "single stage, no cascade; the smallest target that cascades is 520x520") in line, line
    assert "queueing" not in run.stdout  # said before the prompt, so before any model loads
