"""The disc family and the evidence metrics on real renders, where the right answers are known."""
import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch

from selfcascade.benchmarks.evidence import disc_family, metrics

COUNTS = [1, 2, 3] * 4


def renders(size: int, seed: int = 0) -> torch.Tensor:
    return disc_family.render(disc_family.sample_scenes(COUNTS, np.random.default_rng(seed)), size)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_counter_finds_exactly_the_drawn_discs_at_every_size(size):
    found = metrics.count_objects(renders(size))
    assert found == COUNTS
    assert metrics.count_fidelity(found, COUNTS) == 1.0 and metrics.duplication_rate(found, COUNTS) == 0.0


def test_fidelity_and_duplication_tell_missing_from_extra_objects():
    prompted = [1, 2, 3, 3]
    found = [1, 3, 2, 3]
    assert metrics.count_fidelity(found, prompted) == 0.5
    assert metrics.duplication_rate(found, prompted) == 0.25


@pytest.mark.parametrize("size", [32, 64, 128])
def test_discs_land_where_the_scene_puts_them_at_every_size(size):
    scenes = disc_family.sample_scenes([3], np.random.default_rng(1))
    image = disc_family.render(scenes, size)[0]
    saturation = (image.amax(0) - image.amin(0)).numpy()
    labels, found = scipy.ndimage.label(saturation > metrics.SATURATION_THRESHOLD)
    centroids = sorted(np.array(scipy.ndimage.center_of_mass(saturation, labels, range(1, found + 1)))[:, ::-1].tolist())
    expected = sorted((scenes.centres[0].numpy() * size - 0.5).tolist())  # pixel centres sit at (i + 0.5) / size
    assert np.allclose(centroids, expected, atol=0.1 * size / 32)  # a tenth of a native pixel: no offset, no scale error


def test_fine_texture_exists_only_above_the_native_resolution():
    """Real 64/128 renders hold detail beyond the 32x32 frame's Nyquist; a 32x32 sample upscaled holds almost none."""
    for size in (64, 128):
        real = renders(size)
        upscaled = torch.nn.functional.interpolate(renders(32), size=size, mode="bicubic").clamp(0, 1)
        assert metrics.high_frequency_ratio(upscaled, real) < 0.05
        assert 0.8 < metrics.high_frequency_ratio(renders(size, seed=2), real) < 1.25


def test_patch_distance_is_zero_for_a_set_against_itself_and_grows_with_blur():
    real = renders(64)
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    assert metrics.patch_frechet_distance(real, real) < 1e-6
    assert metrics.patch_frechet_distance(blurred, real) > metrics.patch_frechet_distance(renders(64, seed=3), real)


def test_small_discs_count_as_objects_and_specks_do_not():
    image = torch.full((1, 3, 128, 128), 0.45)
    image[0, 0, 10:14, 10:14] = 1.0  # a 16-pixel red blob: a disc drawn at the wrong scale is still an object
    image[0, 1, 50:52, 50:52] = 1.0  # a 4-pixel green speck: noise
    image[0, 2, 80:110, 80:110] = 1.0
    assert metrics.count_objects(image) == [2]


def test_patch_moments_give_the_fit_of_the_chosen_images_and_the_distance_of_the_textbook_formula():
    real, generated = renders(64), renders(64, seed=4)
    blurred = torch.nn.functional.avg_pool2d(generated, 3, stride=1, padding=1, count_include_pad=False)
    moments = metrics.patch_moments(blurred)
    chosen = np.array([0, 3, 3, 7])
    mean, covariance = moments.gaussian(chosen)
    patches = torch.nn.functional.unfold(metrics._luminance(blurred[chosen])[:, None], metrics.PATCH,
                                         stride=metrics.PATCH_STRIDE).transpose(1, 2).reshape(-1, metrics.PATCH ** 2)
    patches = (patches - patches.mean(dim=1, keepdim=True)).numpy()
    assert np.allclose(mean, patches.mean(0)) and np.allclose(covariance, np.cov(patches, rowvar=False))

    a, b = metrics.patch_moments(real).gaussian()
    textbook = (np.square(mean - a).sum() + np.trace(covariance + b - 2.0 * scipy.linalg.sqrtm(covariance @ b).real)) * 1000
    assert metrics.FrechetToReference(metrics.patch_moments(real))(moments, chosen) == pytest.approx(textbook, rel=1e-6)


def test_fine_detail_power_is_per_image_and_its_mean_gives_the_ratio():
    real, generated = renders(128), renders(128, seed=5)
    powers = metrics.high_frequency_powers(generated)
    assert powers.shape == (len(COUNTS),) and (powers > 0).all()
    assert metrics.high_frequency_ratio(generated, real) == pytest.approx(powers.mean() / metrics.high_frequency_powers(real).mean())
