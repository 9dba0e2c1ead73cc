"""Bad adapter files and adapter/model mismatches through the real server, and isolation of tuned prompts.

Every failure names the file or the mismatch and the fix; the server keeps serving; nothing in a
pickle is executed; two tuned prompts queued back to back do not influence each other.
"""
import dataclasses
import os
import pickle
from pathlib import Path

import pytest
import requests
import torch

from cascade_graphs import cascade_node, tiny_inputs
from harness import Graph, PromptRejected

from selfcascade.adapters.fileformat import save_adapter
from selfcascade.adapters.modules import UpsamplerAdapter, new_adapter
from tiny_pack.models import build_model


def forget_cached_outputs(comfy) -> None:
    requests.post(f"{comfy.url}/free", json={"unload_models": True, "free_memory": True}, timeout=30).raise_for_status()


def trained_like(adapter: UpsamplerAdapter, seed: int) -> UpsamplerAdapter:
    """The adapter with every weight drawn at random, as after training (an untrained one is a no-op)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapter.module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return adapter


def tuned_prompt(adapter_name: str, family: str = "sd15", prefix: str = "tuned", **overrides) -> tuple[Graph, object]:
    g = Graph()
    adapter = g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=adapter_name)
    sampler = cascade_node(g, *tiny_inputs(g, family), upsampler_adapter=adapter, **overrides)
    return g, g.node("SaveLatent", samples=sampler, filename_prefix=prefix)


@pytest.fixture
def then_valid(comfy):
    yield
    g = Graph()
    g.node("SaveLatent", samples=cascade_node(g, *tiny_inputs(g, "sd15")), filename_prefix="after_bad_adapter")
    comfy.run(g)


@pytest.fixture(scope="module")
def adapters(adapter_folder: Path) -> dict[str, str]:
    """Adapter files in the server's folder: good ones, wrong ones and broken ones, by role."""
    sd15, sdxl = build_model("sd15"), build_model("sdxl")
    files = {}

    def put(role: str, adapter: UpsamplerAdapter) -> None:
        files[role] = f"robust_{role}.safetensors"
        save_adapter(adapter_folder / files[role], adapter, overwrite=True)

    put("sd15_a", trained_like(new_adapter(sd15), seed=1))
    put("sd15_b", trained_like(new_adapter(sd15), seed=2))
    put("sdxl", new_adapter(sdxl))
    wrong_width = new_adapter(sdxl)
    put("wrong_width", UpsamplerAdapter(dataclasses.replace(wrong_width.spec, family="sd15"), wrong_width.module))

    good = (adapter_folder / files["sd15_a"]).read_bytes()
    files["truncated"] = "robust_truncated.safetensors"
    (adapter_folder / files["truncated"]).write_bytes(good[: len(good) // 2])
    files["corrupt"] = "robust_corrupt.safetensors"
    (adapter_folder / files["corrupt"]).write_bytes(os.urandom(4096))
    newer = good.replace(b'"format_version":"1"', b'"format_version":"9"')
    assert newer != good
    files["newer"] = "robust_newer.safetensors"
    (adapter_folder / files["newer"]).write_bytes(newer)
    return files


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("role, fragments", [
    ("sdxl", ["for sdxl does not fit this sd15 model", "load an adapter made for sd15"]),
    ("wrong_width", ["expects channels", "this model has", "load an adapter made for this model"]),
    ("truncated", ["robust_truncated.safetensors", "truncated", "re-download or re-save it"]),
    ("corrupt", ["robust_corrupt.safetensors", "not a safetensors adapter"]),
    ("newer", ["robust_newer.safetensors", "format version 9 is newer than this node pack reads", "update Self-Cascade for ComfyUI"]),
])
def test_unusable_adapters_fail_with_the_file_the_problem_and_the_fix(comfy, adapters, role, fragments):
    graph, _ = tuned_prompt(adapters[role], prefix=f"bad_{role}")
    message = comfy.expect_execution_error(graph).message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.usefixtures("then_valid")
def test_missing_adapter_file_names_the_file_and_the_folder(comfy):
    graph, _ = tuned_prompt("no_such_adapter.safetensors")
    try:  # hosts that check combo values refuse it at validation; 0.3.75 runs the node, which refuses it
        message = comfy.expect_execution_error(graph).message
    except PromptRejected as rejected:
        message = str(rejected)
    assert "no_such_adapter.safetensors" in message
    assert "is not in models/upsampler_adapters; copy it there and refresh" in message or "adapter_name" in message


class _WritesMarker:
    """Unpickling this object would create a marker file: proof that a loader executed pickle code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.usefixtures("then_valid")
def test_pickle_with_code_is_never_executed(comfy, adapter_folder, tmp_path):
    marker = tmp_path / "pickle_code_ran"
    with open(adapter_folder / "robust_evil.pth", "wb") as handle:
        pickle.dump({"state_dict": _WritesMarker(marker)}, handle)
    graph, _ = tuned_prompt("robust_evil.pth")
    message = comfy.expect_execution_error(graph).message
    assert not marker.exists()
    assert "robust_evil.pth" in message and "never unpickled" in message


def test_back_to_back_tuned_prompts_do_not_influence_each_other(comfy, adapters):
    first_graph, first_save = tuned_prompt(adapters["sd15_a"], prefix="solo_a", k=0.6)
    second_graph, second_save = tuned_prompt(adapters["sd15_b"], prefix="solo_b", k=0.8, seed=5)
    forget_cached_outputs(comfy)
    first_solo = comfy.run(first_graph).latent(first_save.id)
    forget_cached_outputs(comfy)
    second_solo = comfy.run(second_graph).latent(second_save.id)
    forget_cached_outputs(comfy)
    first_id, second_id = comfy.queue(first_graph), comfy.queue(second_graph)
    assert comfy.wait(first_id) is None and comfy.wait(second_id) is None
    first_pair = comfy.history(first_id)["outputs"][first_save.id]["latents"][0]
    second_pair = comfy.history(second_id)["outputs"][second_save.id]["latents"][0]
    from safetensors.torch import load
    assert torch.equal(load(comfy.view(first_pair))["latent_tensor"], first_solo)
    assert torch.equal(load(comfy.view(second_pair))["latent_tensor"], second_solo)
    assert not torch.equal(first_solo, second_solo)


def test_the_adapter_list_holds_adapters_only(comfy, adapter_folder):
    listed = ["listing_mine.safetensors", "listing_official.pth", "listing_sub/nested.safetensors"]
    hidden = ["listing_mine.state.safetensors", "listing_mine-step000500.safetensors",
              "listing_mine-step001000.state.safetensors", "listing_notes.txt", "listing_preview.png",
              ".listing_mine.safetensors.k2j4.tmp"]
    (adapter_folder / "listing_sub").mkdir()
    for name in listed + hidden:
        (adapter_folder / name).write_bytes(b"not read by the listing")
    info = comfy.get("/object_info/SelfCascadeLoadUpsamplerAdapter").json()["SelfCascadeLoadUpsamplerAdapter"]
    spec = info["input"]["required"]["adapter_name"]
    options = {name for name in (spec[0] if isinstance(spec[0], list) else spec[1]["options"]) if "listing" in name}
    assert options == set(listed)
