"""Self-Cascade Upscale through the real server: equal to the hand-built graph, batches and frames kept, bad input.

The hand-built twin is what a user would wire today: VAE Encode -> per stage Pivot Upscale + Pivot
Reschedule + SamplerCustom (noise seed ``seed + stage``, the upsampler adapter applied with the stage's
pivot) -> VAE Decode. Both run on the server's own executor and are read back from SaveLatent and
SaveImage files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cascade_graphs import CFG, SEED, STEPS
from harness import Graph, Node

from selfcascade.adapters.fileformat import save_adapter
from selfcascade.adapters.modules import new_adapter
from tiny_pack.models import build_model

UPSCALE_K = 0.5
VIDEO_FRAMES = 5  # 4n + 1: whole latent frames of the Wan VAE


def image_inputs(g: Graph, family: str, size: int = 64, frames: int = 2, channels: int = 3) -> dict:
    """Model, prompts, VAE and a TinyImage batch for a tiny ``family`` model."""
    vae = g.node("TinyVideoVAE", seed=0) if family == "wan" else g.node("TinyVAE", seed=0)
    return dict(model=g.node("TinyModelLoader", family=family, seed=0),
                positive=g.node("TinyConditioning", family=family, seed=0),
                negative=g.node("TinyConditioning", family=family, seed=1), vae=vae,
                image=g.node("TinyImage", width=size, height=size, frames=frames, channels=channels, seed=3))


def upscale_node(g: Graph, inputs: dict, **overrides) -> Node:
    settings = dict(seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", scale_by=4.0,
                    target_width=0, target_height=0, k=UPSCALE_K, later_k=0.0, upscale_method="bilinear",
                    stage_steps=0, pixel_pivot=False, tile="auto", tile_size=512, **inputs)
    settings.update(overrides)
    return g.node("SelfCascadeUpscale", **settings)


def saved(g: Graph, node: Node, prefix: str) -> tuple[str, str]:
    """SaveLatent and SaveImage of an upscale node's outputs; their ids."""
    latent = g.node("SaveLatent", samples=node.out(1), filename_prefix=f"{prefix}_latent")
    images = g.node("SaveImage", images=node.out(0), filename_prefix=prefix)
    return latent.id, images.id


def hand_built(family: str, sizes: tuple[int, ...], prefix: str, adapter: str | None = None,
               pixel_pivot: bool = False, **image) -> tuple[Graph, str, str]:
    g = Graph()
    inputs = image_inputs(g, family, **image)
    model, vae = inputs["model"], inputs["vae"]
    current = g.node("VAEEncode", pixels=inputs["image"], vae=vae)
    loaded = g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=adapter) if adapter else None
    for index, size in enumerate(sizes, start=1):
        upscaled = g.node("SelfCascadePivotUpscale", samples=current, upscale_method="bilinear", scale_by=2.0,
                          width=size, height=size, model=model, **({"vae": vae} if pixel_pivot else {}))
        stage_model = model
        if loaded:
            stage_model = g.node("SelfCascadeApplyUpsamplerAdapter", model=model, upsampler_adapter=loaded,
                                 pivot=current, strength=1.0, start_percent=0.0, end_percent=1.0)
        sigmas = g.node("SelfCascadePivotReschedule", model=model, scheduler="normal", steps=STEPS, k=UPSCALE_K,
                        stage_steps=0)
        current = g.node("SamplerCustom", model=stage_model, add_noise=True, noise_seed=SEED + index, cfg=CFG,
                         positive=inputs["positive"], negative=inputs["negative"],
                         sampler=g.node("KSamplerSelect", sampler_name="euler"), sigmas=sigmas, latent_image=upscaled)
    decoded = g.node("VAEDecode", samples=current, vae=vae)
    latent = g.node("SaveLatent", samples=current, filename_prefix=f"{prefix}_latent")
    images = g.node("SaveImage", images=decoded, filename_prefix=prefix)
    return g, latent.id, images.id


def pixels(result, node_id: str) -> np.ndarray:
    return np.stack([np.asarray(image.convert("RGB")) for image in result.images(node_id)])


@pytest.fixture(scope="module")
def tuned_adapter(adapter_folder: Path) -> str:
    """A tiny SD1.5 adapter with random (as if trained) weights: an untrained one is an exact no-op."""
    adapter = new_adapter(build_model("sd15"))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in adapter.module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    save_adapter(adapter_folder / "upscale_sd15.safetensors", adapter, overwrite=True)
    return "upscale_sd15.safetensors"


@pytest.mark.parametrize("family, pixel_pivot", [("sd15", False), ("sdxl", False), ("sd15", True)],
                         ids=["sd15", "sdxl", "sd15-pixel-pivot"])
def test_upscale_equals_the_hand_built_graph_and_keeps_the_batch(comfy, family, pixel_pivot):
    g = Graph()
    node = upscale_node(g, image_inputs(g, family), pixel_pivot=pixel_pivot)
    latent_id, images_id = saved(g, node, f"upscale_{family}_{pixel_pivot}")
    ours = comfy.run(g)
    core, core_latent, core_images = hand_built(family, (128, 256), f"hand_{family}_{pixel_pivot}",
                                                pixel_pivot=pixel_pivot)
    reference = comfy.run(core)

    assert ours.latent(latent_id).shape == (2, 4, 32, 32)
    assert torch.equal(ours.latent(latent_id), reference.latent(core_latent))
    assert pixels(ours, images_id).shape == (2, 256, 256, 3)
    assert np.array_equal(pixels(ours, images_id), pixels(reference, core_images))
    report = ours.text(node.id).splitlines()
    assert report[0].startswith("input: 64x64, 2 images, encoded not tiled (auto: ComfyUI estimates")
    assert report[1].startswith("stage 1: 128x128, K 0.50, 3 steps,")
    assert report[2].startswith("stage 2: 256x256, K 0.50, 3 steps,")
    assert report[3].startswith("output: 256x256, 2 images, decoded not tiled (auto:")


def test_upscale_with_an_adapter_equals_the_hand_built_tuned_graph(comfy, tuned_adapter):
    g = Graph()
    node = upscale_node(g, image_inputs(g, "sd15"), upsampler_adapter=g.node(
        "SelfCascadeLoadUpsamplerAdapter", adapter_name=tuned_adapter), adapter_strength=1.0)
    latent_id, _ = saved(g, node, "upscale_tuned")
    ours = comfy.run(g).latent(latent_id)
    core, core_latent, _ = hand_built("sd15", (128, 256), "hand_tuned", adapter=tuned_adapter)
    assert torch.equal(ours, comfy.run(core).latent(core_latent))

    plain = Graph()
    plain_latent, _ = saved(plain, upscale_node(plain, image_inputs(plain, "sd15")), "upscale_untuned")
    assert not torch.equal(ours, comfy.run(plain).latent(plain_latent))  # the adapter did act


def test_video_frames_become_one_video_latent_and_come_back_as_frames(comfy):
    g = Graph()
    node = upscale_node(g, image_inputs(g, "wan", size=32, frames=VIDEO_FRAMES))
    latent_id, images_id = saved(g, node, "upscale_wan")
    ours = comfy.run(g)
    core, core_latent, core_images = hand_built("wan", (64, 128), "hand_wan", size=32, frames=VIDEO_FRAMES)
    reference = comfy.run(core)

    assert ours.latent(latent_id).shape == (1, 16, 2, 16, 16)  # 5 frames -> 2 latent frames, 32 px -> 128 px
    assert torch.equal(ours.latent(latent_id), reference.latent(core_latent))
    assert pixels(ours, images_id).shape == (VIDEO_FRAMES, 128, 128, 3)
    assert np.array_equal(pixels(ours, images_id), pixels(reference, core_images))
    assert ours.text(node.id).splitlines()[0].startswith(f"input: 32x32, {VIDEO_FRAMES} frames, encoded not tiled")


def test_a_clip_of_any_length_keeps_its_frame_count(comfy):
    g = Graph()
    node = upscale_node(g, image_inputs(g, "wan", size=32, frames=6), scale_by=2.0)
    _, images_id = saved(g, node, "upscale_wan_6")
    result = comfy.run(g)
    assert pixels(result, images_id).shape == (6, 64, 64, 3)
    assert "6 frames padded with 3 copies of the last for the video VAE" in result.text(node.id)


def mean_abs_deviation(values: np.ndarray) -> float:
    return float(np.abs(values - values.mean()).mean())


def test_tiled_encode_and_decode_give_the_same_size_and_a_close_result(comfy):
    g = Graph()
    inputs = image_inputs(g, "sd15", frames=1)
    tiled, whole = upscale_node(g, inputs, tile="always", tile_size=64), upscale_node(g, inputs, tile="never")
    (tiled_latent, tiled_images), (whole_latent, whole_images) = saved(g, tiled, "tiled"), saved(g, whole, "whole")
    result = comfy.run(g)

    report = result.text(tiled.id).splitlines()
    assert report[0].startswith("input: 64x64, 1 image, encoded tiled (tile = always)")
    assert report[-1].startswith("output: 256x256, 1 image, decoded tiled (tile = always)")
    assert "decoded not tiled (tile = never)" in result.text(whole.id)
    # 64 px tiles on a 64 px input and a 256 px output: the encode and the decode really ran in tiles
    # (the results differ), and the seams cost a small fraction of the image's own variation
    latents = result.latent(tiled_latent).numpy(), result.latent(whole_latent).numpy()
    images = pixels(result, tiled_images) / 255.0, pixels(result, whole_images) / 255.0
    assert latents[0].shape == latents[1].shape and images[0].shape == images[1].shape == (1, 256, 256, 3)
    assert 0.0 < np.abs(latents[0] - latents[1]).mean() < 0.01 * mean_abs_deviation(latents[1])
    assert 0.0 < np.abs(images[0] - images[1]).mean() < 0.1 * mean_abs_deviation(images[1])


def test_alpha_is_dropped_with_a_note(comfy):
    g = Graph()
    node = upscale_node(g, image_inputs(g, "sd15", frames=1, channels=4), scale_by=2.0)
    _, images_id = saved(g, node, "upscale_alpha")
    result = comfy.run(g)
    assert pixels(result, images_id).shape == (1, 128, 128, 3)
    assert "the image's alpha channel was dropped" in result.text(node.id)


def test_a_target_below_the_input_is_one_stated_pass_at_the_target_size(comfy):
    g = Graph()
    node = upscale_node(g, image_inputs(g, "sd15", frames=1), target_width=48, target_height=48)
    _, images_id = saved(g, node, "upscale_smaller")
    result = comfy.run(g)
    report = result.text(node.id)
    assert pixels(result, images_id).shape == (1, 48, 48, 3)
    assert "stage 1: 48x48, K 0.50" in report
    assert "target 48x48 is not larger than the input 64x64: one pass at the target size, no cascade" in report


def then_still_serving(comfy) -> None:
    g = Graph()
    saved(g, upscale_node(g, image_inputs(g, "sd15", frames=1), scale_by=2.0), "after_bad_upscale")
    comfy.run(g)


@pytest.mark.parametrize("case, fragments", [
    ("one_pixel", ("the image is 1x1 px, too small to upscale", "at least 8x8 px")),
    ("grey_channel", ("the image has 1 channels", "connect an RGB image")),
    ("video_vae_for_sd15", ("the VAE makes 16-channel video latents but this model expects 4-channel image latents",
                            "belongs to another model family", "Connect this model's own VAE")),
])
def test_bad_input_fails_with_the_problem_and_the_fix_and_the_server_keeps_serving(comfy, case, fragments):
    g = Graph()
    inputs = image_inputs(g, "sd15", frames=1)
    if case == "one_pixel":
        inputs["image"] = g.node("TinyImage", width=1, height=1, frames=1, channels=3, seed=0)
    elif case == "grey_channel":
        inputs["image"] = g.node("TinyImage", width=64, height=64, frames=1, channels=1, seed=0)
    else:
        inputs["vae"] = g.node("TinyVideoVAE", seed=0)
    saved(g, upscale_node(g, inputs), f"bad_{case}")
    error = comfy.expect_execution_error(g)
    assert error.node_type == "SelfCascadeUpscale"
    assert all(fragment in error.message for fragment in fragments), error.message
    then_still_serving(comfy)
