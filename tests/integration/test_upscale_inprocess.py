"""Self-Cascade Upscale's pieces on the real host in-process: the tiling rule, the input's preparation, the plan.

The node end to end (equal to the hand-built graph, tiled against untiled, bad input) is tested
through the server in tests/server/test_upscale_server.py.
"""
import pytest
import torch

from selfcascade.sampling.families import detect_family
from selfcascade.sampling.upscale import AUTO_TILE_PIXELS, UpscaleInputError, check_vae, plan_upscale, prepare_image, tiling
from tiny_pack.image_nodes import smooth_images
from tiny_pack.models import build_model, build_vae, build_video_vae

GB = 1024**3


def test_auto_tiles_above_the_stated_size_or_when_the_hosts_estimate_does_not_fit():
    vae = build_vae()
    tiled, why = tiling(vae, "auto", AUTO_TILE_PIXELS + 1, estimate=0.0)
    assert tiled and why == "auto: 4.2 MP per frame, above 4.2 MP"
    assert tiling(vae, "auto", AUTO_TILE_PIXELS, estimate=0.0)[0] is False  # 2048x2048 itself is not above
    tiled, why = tiling(vae, "auto", 64 * 64, estimate=10**6 * GB)  # more than any machine has free
    assert tiled and why.startswith("auto: ComfyUI estimates 1000000.0 GB,")
    assert tiling(vae, "never", AUTO_TILE_PIXELS * 4, estimate=10**6 * GB) == (False, "tile = never")
    assert tiling(vae, "always", 64, estimate=0.0) == (True, "tile = always")


@pytest.mark.parametrize("frames, padded", [(1, 1), (5, 5), (6, 9), (8, 9), (9, 9)])
def test_clips_are_padded_to_whole_latent_frames_of_the_video_vae(frames, padded):
    image = smooth_images(frames, 32, 32, 3, seed=0)
    pixels, notes = prepare_image(image, build_video_vae())
    assert pixels.shape[0] == padded and torch.equal(pixels[:frames], image)
    assert torch.equal(pixels[frames:], image[-1:].expand(padded - frames, -1, -1, -1))
    assert bool(notes) == (padded != frames)


def test_image_models_take_every_frame_as_it_is_and_a_ragged_size_is_stated():
    image = smooth_images(6, 36, 40, 3, seed=0)
    pixels, notes = prepare_image(image, build_vae())
    assert torch.equal(pixels, image)
    assert notes == ["input 40x36 is not a multiple of the VAE's 8 px: VAE Encode keeps the centre 40x32"]


def test_the_plan_starts_at_the_size_vae_encode_keeps():
    model, vae = build_model("sd15"), build_vae()
    plan = plan_upscale(smooth_images(1, 68, 100, 3, seed=0), vae, detect_family(model), 2.0, 0, 0)
    assert (plan.base.width, plan.base.height) == (96, 64) and (plan.target.width, plan.target.height) == (192, 128)


def test_a_vae_of_another_family_is_refused_before_any_compute():
    flux = build_model("flux")  # an SD VAE (4 channels) for Flux (16): what a wrong Load VAE gives
    with pytest.raises(UpscaleInputError, match="4-channel image latents but this model expects 16-channel image"):
        check_vae(flux, build_vae())
    wan = build_model("wan")
    check_vae(wan, build_video_vae())
