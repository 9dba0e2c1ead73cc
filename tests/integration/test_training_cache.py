"""The training cache with the tiny VAE and CLIP: each crop and caption is encoded once, exactly what
the encoders give, and found again by later runs; another seed (other crops) gets other entries."""
import pytest
import torch

from selfcascade.adapters import dataset, training
from tiny_pack.images import write_noise_images
from tiny_pack.models import build_vae
from tiny_training import build_clip


@pytest.fixture
def images(tmp_path):
    folder = write_noise_images(tmp_path / "images", 3, size=(72, 96))
    (folder / "image0.txt").write_text("a red door")
    return folder


def encoder(clip):
    return lambda caption: clip.encode_from_tokens_scheduled(clip.tokenize(caption), show_pbar=False)


def cached_files(cache):
    return {path: path.stat().st_mtime_ns for path in cache.folder.rglob("*.safetensors")}


def test_crops_and_captions_are_encoded_once_and_reused(images, tmp_path):
    vae, clip, cache = build_vae(), build_clip(), dataset.TrainingCache(tmp_path / "cache")
    settings = training.TrainingSettings(64, 64, 1, seed=2)
    data = training.prepare_data(images, vae, settings, cache, "vae", encode_text=encoder(clip), text_id="clip")
    first = cached_files(cache)
    assert len(first) == 3 + 2  # three crops, two distinct captions ("" and "a red door")

    again = training.prepare_data(images, vae, settings, cache, "vae", encode_text=encoder(clip), text_id="clip")
    assert again == data and cached_files(cache) == first  # nothing re-encoded or rewritten

    record = dataset.scan_image_folder(images, 64, 64)[0]
    crop = dataset.load_crop(record, *dataset.crop_origin(2, record, 64, 64), 64, 64)
    latent, pivot = dataset.load_example(data.examples[0].latent_file)
    assert torch.equal(latent, vae.encode(crop)) and torch.equal(pivot, vae.encode(dataset.downsample(crop)))
    assert latent.shape == (1, 4, 8, 8) and pivot.shape == (1, 4, 4, 4)
    context, extras = data.conditioning_of(data.examples[0])[0]
    expected_context, expected_extras = encoder(clip)("a red door")[0]
    assert torch.equal(context, expected_context) and torch.equal(extras["pooled_output"], expected_extras["pooled_output"])


def test_another_seed_or_encoder_gets_its_own_entries(images, tmp_path):
    vae, cache = build_vae(), dataset.TrainingCache(tmp_path / "cache")
    conditioning = [[torch.zeros((1, 8, 32)), {}]]
    base = training.prepare_data(images, vae, training.TrainingSettings(64, 64, 1, seed=2), cache, "vae",
                                 conditioning=conditioning)
    reseeded = training.prepare_data(images, vae, training.TrainingSettings(64, 64, 1, seed=3), cache, "vae",
                                     conditioning=conditioning)
    other_vae = training.prepare_data(images, vae, training.TrainingSettings(64, 64, 1, seed=2), cache, "other-vae",
                                      conditioning=conditioning)
    files = [{e.latent_file for e in d.examples} for d in (base, reseeded, other_vae)]
    assert files[0] != files[1] and files[0].isdisjoint(files[2])
