"""Train Upsampler Adapter on the real server, from a workflow: it trains the tiny SD1.5, saves to
models/upsampler_adapters, and Load Upsampler Adapter then lists it and the cascade samples with it.

This module overrides ``comfy_server`` with a server whose upsampler_adapters folder is a temporary
one: the node writes there, never into the host tree.
"""
import json
from pathlib import Path

import pytest

from cascade_graphs import cascade_node
from harness import ComfyServer, Graph, Node
from tiny_pack.images import write_noise_images


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("upsampler_adapters")


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory, adapter_folder):
    """Overrides the session server for this module (conftest's ``comfy`` client then talks to it)."""
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("comfy-training"),
                                  model_paths={"upsampler_adapters": str(adapter_folder)}) as server:
        yield server


@pytest.fixture(scope="module")
def images(comfy_server) -> str:
    """A folder of two images in the server's input folder, by the name the node takes."""
    return write_noise_images(comfy_server.workdir / "input" / "training_images", 2).name


def training_graph(image_folder, save_name: str, steps: int = 3, overwrite: bool = False, family: str = "sd15",
                   variant: str = "lite") -> tuple[Graph, str]:
    graph = Graph()
    vae = graph.node("TinyFluxVAE", seed=0) if family == "flux" else graph.node("TinyVAE", seed=0)
    train = graph.node("SelfCascadeTrainUpsamplerAdapter", model=graph.node("TinyModelLoader", family=family, seed=0),
                       vae=vae, conditioning=graph.node("TinyConditioning", family=family, seed=0),
                       image_folder=str(image_folder), resolution=64, steps=steps, variant=variant, injection="skip",
                       k=0.7, learning_rate=0.01, batch_size=1, seed=0, save_name=save_name,
                       overwrite=overwrite)
    return graph, train.id


def combo_options(spec: list) -> list:
    """A combo input's options in /object_info: ``[[options], {...}]`` or ``["COMBO", {"options": [...]}]``."""
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def test_trained_adapter_is_saved_listed_and_loadable(comfy, adapter_folder, images):
    adapters = adapter_folder
    graph, train = training_graph(images, "tiny-trained")
    report = comfy.run(graph).text(train)
    assert "saved tiny-trained.safetensors: 3 steps on 2 images" in report
    assert sorted(p.name for p in adapters.iterdir()) == ["tiny-trained.safetensors"]  # no state sidecar, no temp

    info = comfy.get("/object_info/SelfCascadeLoadUpsamplerAdapter").json()["SelfCascadeLoadUpsamplerAdapter"]
    assert "tiny-trained.safetensors" in combo_options(info["input"]["required"]["adapter_name"])

    use, loader, save = tuned_cascade("sd15", "EmptyLatentImage", 32, "normal", "tiny-trained", "trained-adapter")
    result = comfy.run(use)
    assert result.latent(save.id).shape == (1, 4, 8, 8)
    summary = result.text(loader.id)
    assert "lite upsampler adapter for sd15" in summary and "steps: 3" in summary and "resolution: 64x64" in summary


def tuned_cascade(family: str, latent: str, size: int, scheduler: str, adapter: str,
                  prefix: str) -> tuple[Graph, Node, Node]:
    """A 2x Self-Cascade KSampler on the tiny ``family`` model with the trained adapter ``adapter`` loaded, its latent
    saved; returns (graph, Load Upsampler Adapter, SaveLatent)."""
    use = Graph()
    loader = use.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=f"{adapter}.safetensors")
    sampler = cascade_node(use, use.node("TinyModelLoader", family=family, seed=0),
                           use.node("TinyConditioning", family=family, seed=0),
                           use.node("TinyConditioning", family=family, seed=1),
                           use.node(latent, width=size, height=size, batch_size=1), seed=0, steps=4, cfg=3.0,
                           scheduler=scheduler, k=0.7, upsampler_adapter=loader)
    return use, loader, use.node("SaveLatent", samples=sampler, filename_prefix=prefix)


def test_an_existing_name_is_refused_and_kept(comfy, adapter_folder, images):
    existing = adapter_folder / "taken.safetensors"
    existing.write_bytes(b"someone's adapter")
    graph, _ = training_graph(images, "taken", steps=2)
    error = comfy.expect_execution_error(graph)
    assert error.node_type == "SelfCascadeTrainUpsamplerAdapter" and "already exists" in error.message
    assert existing.read_bytes() == b"someone's adapter"


def test_an_empty_image_folder_is_refused(comfy, comfy_server):
    (comfy_server.workdir / "input" / "empty_images").mkdir()
    graph, _ = training_graph("empty_images", "never-written")
    error = comfy.expect_execution_error(graph)
    assert "image folder 'empty_images' holds no" in error.message and "put your training images in" in error.message


def weight_objects(comfy, label: str) -> dict:
    """What TinyModelWeightIds reports about the cached tiny SD1.5 (the training graph's loader)."""
    graph = Graph()
    report = graph.node("TinyModelWeightIds", model=graph.node("TinyModelLoader", family="sd15", seed=0), label=label)
    return json.loads(comfy.run(graph).text(report.id))


def test_training_leaves_the_cached_model_s_weight_objects_and_values_alone(comfy, images):
    before = weight_objects(comfy, "before training")
    graph, train = training_graph(images, "leaves-weights-alone", steps=2)
    assert "saved leaves-weights-alone.safetensors: 2 steps" in comfy.run(graph).text(train)
    after = weight_objects(comfy, "after training")
    assert after["module"] == before["module"], "the loader ran again: the comparison would prove nothing"
    assert before["tensors"] > 0 and after == before


def test_a_flux_model_trains_a_dit_lite_adapter_the_cascade_then_takes(comfy, adapter_folder, images):
    """The injection widget keeps its UNet default (skip): dit-lite takes its own, the image tokens after its blocks."""
    graph, train = training_graph(images, "tiny-flux-dit", steps=2, family="flux", variant="dit-lite")
    report = comfy.run(graph).text(train)
    assert "saved tiny-flux-dit.safetensors: 2 steps on 2 images" in report
    assert "dit-lite upsampler adapter for flux" in report

    use, loader, save = tuned_cascade("flux", "EmptySD3LatentImage", 64, "simple", "tiny-flux-dit", "trained-dit-adapter")
    result = comfy.run(use)
    assert result.latent(save.id).shape == (1, 16, 16, 16)
    assert "dit-lite upsampler adapter for flux" in result.text(loader.id) and "steps: 2" in result.text(loader.id)


@pytest.mark.parametrize("family, variant, fragments", [
    ("flux", "lite", ["the lite adapter is for UNets; this is a flux transformer: use variant 'dit-lite'"]),
    ("sd15", "dit-lite", ["the dit-lite adapter needs a Flux-style transformer", "this is a sd15 model: use variant 'lite'"]),
])
def test_a_variant_for_the_other_kind_of_model_is_refused_before_training(comfy, adapter_folder, images, family,
                                                                         variant, fragments):
    graph, _ = training_graph(images, f"refused-{variant}", steps=2, family=family, variant=variant)
    error = comfy.expect_execution_error(graph)
    assert error.node_type == "SelfCascadeTrainUpsamplerAdapter"
    assert all(fragment in error.message for fragment in fragments), error.message
    assert not (adapter_folder / f"refused-{variant}.safetensors").exists()
