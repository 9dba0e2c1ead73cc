"""scripts/train_adapter.py end to end on the tiny SD1.5, VAE and CLIP (``tiny_training.tiny_models``):
resume repeats the uninterrupted run bit for bit, two gloo processes under torchrun match one
process with the same global batch, and bad input stops with a clear message and nothing written.
"""
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch
from PIL import Image

import train_adapter
from selfcascade.adapters import fileformat, training
from selfcascade.adapters.modules import ALL_VARIANTS
from tiny_pack.images import write_noise_images
from tiny_pack.models import build_conditioning, build_flux_vae, build_model
from tiny_training import tiny_models

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("tiny_training.py")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def images(tmp_path):
    folder = write_noise_images(tmp_path / "images", 4)
    (folder / "image1.txt").write_text("a red door")
    (folder / "image2.txt").write_text("two cats")
    return folder


def cli(images, output, *extra, cache=None):
    args = ["--images", str(images), "--output", str(output), "--resolution", "64", "--lr", "1e-2",
            "--cache-dir", str(cache or output.parent / "cache"), *map(str, extra)]
    return train_adapter.main(args, load_models=tiny_models)


def tensors(path):
    with safetensors.safe_open(str(path), "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


@pytest.mark.parametrize("command", [["-m", "scripts.train_adapter"], ["scripts/train_adapter.py"]])
def test_help_runs_from_the_repo_root(command):
    result = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--images" in result.stdout and "--resume" in result.stdout


def test_resume_from_a_checkpoint_repeats_the_uninterrupted_run(images, tmp_path):
    full = tmp_path / "full.safetensors"
    assert cli(images, full, "--steps", 6, "--checkpoint-every", 3, "--batch-size", 2) == 0
    midway = tmp_path / "full-step000003.safetensors"
    assert fileformat.load_adapter(midway).spec.provenance["steps"] == "3"

    resumed = tmp_path / "resumed.safetensors"
    assert cli(images, resumed, "--steps", 6, "--resume", midway, "--checkpoint-every", 0) == 0

    uninterrupted, repeated = tensors(training.state_path(full)), tensors(training.state_path(resumed))
    assert uninterrupted.keys() == repeated.keys()
    assert all(torch.equal(uninterrupted[name], repeated[name]) for name in uninterrupted)  # weights and AdamW state
    assert fileformat.load_adapter(resumed).spec.provenance["steps"] == "6"


def test_two_gloo_processes_match_one_with_the_same_global_batch(images, tmp_path):
    common = ["--images", images, "--resolution", "64", "--steps", 3, "--lr", "1e-2", "--checkpoint-every", 0,
              "--cache-dir", tmp_path / "cache"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, DRIVER, *map(str, common), "--batch-size", "2", "--output",
                             str(tmp_path / "single.safetensors")], capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    parallel = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               DRIVER, *map(str, common), "--batch-size", "1", "--output",
                               str(tmp_path / "parallel.safetensors")], capture_output=True, text=True, env=env,
                              timeout=600)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    assert "over 2 process(es)" in parallel.stdout

    one, two = tensors(tmp_path / "single.state.safetensors"), tensors(tmp_path / "parallel.state.safetensors")
    weights = [name for name in one if name.startswith("param.")]
    assert weights and all(torch.allclose(one[name], two[name], rtol=1e-4, atol=1e-6) for name in weights)
    assert any(not torch.equal(one[name], torch.zeros_like(one[name])) for name in weights if name.endswith("scale"))


def test_an_existing_output_is_refused_before_any_work_unless_overwriting(images, tmp_path, capsys):
    output = tmp_path / "taken.safetensors"
    output.write_bytes(b"precious")
    assert cli(images, output, "--steps", 2) == 2
    assert "already exists" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    assert not (tmp_path / "cache").exists()  # refused before loading or encoding anything

    assert cli(images, output, "--steps", 2, "--overwrite") == 0
    assert fileformat.load_adapter(output).spec.provenance["steps"] == "2"


@pytest.mark.parametrize("folder_content, message", [
    ({}, "holds no"),
    ({"tiny.png": (32, 32)}, "smaller than the 64x64"),
])
def test_bad_image_folders_stop_with_the_fix(tmp_path, capsys, folder_content, message):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in folder_content.items():
        Image.new("RGB", size).save(folder / name)
    assert cli(folder, tmp_path / "out.safetensors", "--steps", 2) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


def test_a_full_disk_while_saving_leaves_no_file(images, tmp_path, capsys, monkeypatch):
    output = tmp_path / "out" / "adapter.safetensors"
    output.parent.mkdir()
    write = safetensors.torch.save_file

    def full_output_disk(tensors, filename, metadata=None):
        if Path(filename).parent != output.parent:
            return write(tensors, filename, metadata=metadata)
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(safetensors.torch, "save_file", full_output_disk)

    assert cli(images, output, "--steps", 2, "--checkpoint-every", 0, cache=tmp_path / "cache") == 2
    assert "free disk space" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []


@pytest.mark.parametrize("model_args, message", [
    ([], "give the base model"),
    (["--checkpoint", "missing.safetensors"], "missing.safetensors"),
    (["--diffusion-model", "unet.safetensors"], "needs --vae and --text-encoder"),
])
def test_the_file_loader_names_what_is_missing(images, tmp_path, capsys, model_args, message):
    output = tmp_path / "out.safetensors"
    args = ["--images", str(images), "--output", str(output), "--resolution", "64", "--steps", "2", *model_args]
    assert train_adapter.main(args) == 2
    assert message in capsys.readouterr().err and not output.exists()


def tiny_flux(args) -> train_adapter.LoadedModels:
    """The tiny Flux and its VAE; every caption gets the same tiny Flux conditioning."""
    return train_adapter.LoadedModels(build_model("flux"), build_flux_vae(), lambda caption: build_conditioning("flux"),
                                      "tiny-flux-0", "tiny-flux-vae-0", "tiny-flux-text-0")


def test_the_variant_choices_are_the_adapter_variants():
    assert train_adapter.VARIANTS == ALL_VARIANTS


def test_a_flux_model_trains_a_dit_lite_adapter(images, tmp_path):
    output = tmp_path / "dit.safetensors"
    assert train_adapter.main(["--images", str(images), "--output", str(output), "--resolution", "64", "--steps", "2",
                               "--variant", "dit-lite", "--checkpoint-every", "0", "--cache-dir", str(tmp_path / "cache")],
                              load_models=tiny_flux) == 0
    spec = fileformat.load_adapter(output).spec
    assert (spec.variant, spec.family, spec.injection, spec.provenance["steps"]) == ("dit-lite", "flux", "backbone", "2")


@pytest.mark.parametrize("variant, load_models, message", [
    ("lite", tiny_flux, "the lite adapter is for UNets; this is a flux transformer: use variant 'dit-lite'"),
    ("dit-lite", tiny_models, "the dit-lite adapter needs a Flux-style transformer"),
])
def test_a_variant_for_the_other_kind_of_model_stops_with_the_fix(images, tmp_path, capsys, variant, load_models,
                                                                  message):
    output = tmp_path / "out.safetensors"
    assert train_adapter.main(["--images", str(images), "--output", str(output), "--resolution", "64", "--steps", "2",
                               "--variant", variant], load_models=load_models) == 2
    assert message in capsys.readouterr().err and not output.exists()
