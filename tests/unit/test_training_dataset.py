"""Training data and draws without a model: folder scan, crops, batch order, t and noise, atomic writes, loss target."""
import errno
import math

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

import comfy.model_sampling
from selfcascade.adapters import dataset, training
from selfcascade.adapters.dataset import TrainingInputError


def write_png(path, width, height, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_scan_finds_images_recursively_with_captions(tmp_path):
    write_png(tmp_path / "b.png", 80, 64)
    write_png(tmp_path / "sub" / "a.png", 64, 96)
    Image.open(tmp_path / "b.png").convert("RGB").save(tmp_path / "sub" / "c.jpg")
    (tmp_path / "sub" / "a.txt").write_text("  a red door \n")
    write_png(tmp_path / ".cache" / "hidden.png", 64, 64)
    (tmp_path / "notes.md").write_text("not an image")

    records = dataset.scan_image_folder(tmp_path, 64, 64)

    assert [r.relative for r in records] == ["b.png", "sub/a.png", "sub/c.jpg"]
    assert [(r.width, r.height) for r in records] == [(80, 64), (64, 96), (80, 64)]
    assert [r.caption for r in records] == ["", "a red door", ""]


@pytest.mark.parametrize("make, expected", [
    (lambda root: None, "holds no"),
    (lambda root: (root / "broken.png").write_bytes(b"not a png at all"), "broken.png"),
    (lambda root: write_png(root / "small.png", 48, 80), "small.png (48x80)"),
])
def test_scan_refuses_unusable_folders_naming_the_problem(tmp_path, make, expected):
    make(tmp_path)
    with pytest.raises(TrainingInputError) as raised:
        dataset.scan_image_folder(tmp_path, 64, 64)
    assert expected in str(raised.value)


def test_a_missing_folder_gets_the_same_answer_as_an_empty_one(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.png").write_bytes(b"a file, not a folder")
    answers = set()
    for folder in ("nowhere", "empty", "file.png"):
        with pytest.raises(TrainingInputError) as raised:
            dataset.scan_image_folder(tmp_path / folder, 64, 64)
        answers.add(str(raised.value).replace(folder, "<folder>"))
    assert len(answers) == 1 and "holds no png/jpg/jpeg/webp images" in answers.pop()


def test_links_that_lead_out_of_the_folder_are_not_read(tmp_path):
    outside, folder = tmp_path / "outside", tmp_path / "images"
    (outside / "sub").mkdir(parents=True)
    folder.mkdir()
    write_png(outside / "secret.png", 64, 64)
    write_png(outside / "sub" / "deep.png", 64, 64)
    write_png(folder / "own.png", 64, 64)
    (folder / "linked.png").symlink_to(outside / "secret.png")
    (folder / "linked_folder").symlink_to(outside / "sub", target_is_directory=True)
    (folder / "inner.png").symlink_to(folder / "own.png")  # a link that stays inside is an image like any other
    assert [r.relative for r in dataset.scan_image_folder(folder, 64, 64)] == ["inner.png", "own.png"]


def test_crop_is_fixed_per_image_and_inside_it():
    record = dataset.ImageRecord(None, "x/y.png", 300, 200, "")
    origins = {dataset.crop_origin(seed, record, 64, 64) for seed in range(20)}
    assert dataset.crop_origin(3, record, 64, 64) == dataset.crop_origin(3, record, 64, 64)
    assert len(origins) > 10  # the seed moves it
    assert all(0 <= left <= 236 and 0 <= top <= 136 for left, top in origins)


def test_crop_pixels_and_half_size_pivot(tmp_path):
    write_png(tmp_path / "a.png", 80, 72, seed=4)
    record = dataset.scan_image_folder(tmp_path, 32, 32)[0]
    crop = dataset.load_crop(record, 10, 6, 32, 32)
    expected = torch.from_numpy(np.asarray(Image.open(tmp_path / "a.png"))[6:38, 10:42].copy()).float() / 255
    assert crop.shape == (1, 32, 32, 3) and torch.equal(crop[0], expected)
    pivot = dataset.downsample(crop)
    assert pivot.shape == (1, 16, 16, 3)
    assert torch.allclose(pivot[0, 0, 0], crop[0, :2, :2].mean(dim=(0, 1)), atol=1e-6)  # a 2x2 box average


def test_every_epoch_shows_every_example_once():
    order = training.global_batch_indices(seed=5, step=0, global_batch=21, count=7)
    assert [sorted(order[i:i + 7]) for i in (0, 7, 14)] == [list(range(7))] * 3
    assert order[:7] != order[7:14]  # reshuffled per epoch
    assert training.global_batch_indices(5, 2, 3, 7) == order[6:9]  # a step's batch is the same however reached


def test_draws_are_fixed_by_seed_step_and_item_and_stay_below_k():
    u, noise = training.item_draw(1, 4, 2, 0.7, torch.Size((1, 4, 8, 8)))
    again_u, again_noise = training.item_draw(1, 4, 2, 0.7, torch.Size((1, 4, 8, 8)))
    assert u == again_u and torch.equal(noise, again_noise)
    draws = [training.item_draw(1, step, item, 0.7, torch.Size((1,)))[0] for step in range(50) for item in range(4)]
    assert all(training.MIN_TIME < u <= 0.7 for u in draws)
    assert max(draws) > 0.6 and min(draws) < 0.1


def _sampling(prediction, schedule):
    class Sampling(schedule, prediction):
        pass
    return Sampling()


@pytest.mark.parametrize("prediction, schedule, target", [
    (comfy.model_sampling.EPS, comfy.model_sampling.ModelSamplingDiscrete, lambda s, x0, eps: eps),
    (comfy.model_sampling.V_PREDICTION, comfy.model_sampling.ModelSamplingDiscrete,
     lambda s, x0, eps: (eps - s * x0) / torch.sqrt(1 + s**2)),
    (comfy.model_sampling.CONST, comfy.model_sampling.ModelSamplingDiscreteFlow, lambda s, x0, eps: eps - x0),
], ids=["eps", "v", "flow"])
def test_loss_is_the_mse_of_the_models_own_prediction(prediction, schedule, target):
    """((denoised - x0) / c_out)^2 = (output - textbook target)^2: eps-, v- and velocity-MSE."""
    sampling = _sampling(prediction, schedule)
    generator = torch.Generator().manual_seed(0)
    x0, eps, output = (torch.randn((2, 4, 3, 3), generator=generator) for _ in range(3))
    sigma = torch.tensor([float(sampling.percent_to_sigma(0.8)), float(sampling.percent_to_sigma(0.4))])
    noisy = sampling.noise_scaling(sigma, eps, x0)
    scale = training.output_scale(sampling, sigma, noisy.ndim)
    residual = (sampling.calculate_denoised(sigma, output, noisy) - x0) / scale
    assert torch.allclose(residual, output - target(sigma.view(2, 1, 1, 1), x0, eps), atol=1e-4)


def test_resolution_must_halve_into_whole_latents():
    training.check_resolution(1024, 96, 8)
    with pytest.raises(TrainingInputError, match="use 96 or 112"):
        training.check_resolution(100, 64, 8)


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "cache.safetensors"
    dataset.write_cache_file(target, {"x": torch.ones(3)}, {"format": "old"})
    original = target.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)

    with pytest.raises(OSError, match="cache.safetensors.*No space left.*free disk space"):
        dataset.write_cache_file(target, {"x": torch.zeros(3)}, {"format": "new"})
    assert target.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["cache.safetensors"]


def test_settings_refuse_out_of_range_values():
    with pytest.raises(TrainingInputError, match="K = 0"):
        training.TrainingSettings(64, 64, 10, k=0.0).check()
    with pytest.raises(TrainingInputError, match="batch_size"):
        training.TrainingSettings(64, 64, 10, batch_size=0).check()
    assert math.isclose(training.TrainingSettings(64, 64, 10, batch_size=2, accumulation=3).global_batch(2), 12)
