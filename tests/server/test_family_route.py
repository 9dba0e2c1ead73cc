"""``GET /selfcascade/family`` on the real server: the family of a loader's file, from its header alone.

The module's server has temporary ``checkpoints`` and ``diffusion_models`` folders holding model
files made from ComfyUI's own classes: tiny checkpoints written by ``comfy.sd.save_checkpoint``, and
full-size SDXL and SD2.1-768-v checkpoints and a ChromaRadiance diffusion model whose tensors are
only in the header (the data is a sparse hole: the route never reads it).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import requests
import torch

import comfy.model_base
import comfy.sd
import comfy.supported_models
from harness import ComfyServer
from selfcascade.benchmarks.models import FULL_UNET
from selfcascade.benchmarks.real_layout import checkpoint_state_dict
from tiny_pack.models import CHROMA_RADIANCE_CONFIG, build_model

SD2_V_BIAS = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"  # what the host tells v from
SD21_768_UNET = {**FULL_UNET["sd15"], "context_dim": 1024, "use_linear_in_transformer": True, "num_heads": -1,
                 "num_head_channels": 64}


def write_header_only(path: Path, shapes: dict[str, torch.Tensor], data: dict[str, torch.Tensor] = {}) -> None:
    """A valid fp16 safetensors file of ``shapes``'s names and shapes whose data is a sparse hole, except ``data``."""
    header, offset = {}, 0
    for name, tensor in shapes.items():
        size = tensor.numel() * 2
        header[name] = {"dtype": "F16", "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for name, tensor in data.items():
            handle.seek(8 + len(raw) + header[name]["data_offsets"][0])
            handle.write(tensor.to(torch.float16).numpy().tobytes())
        handle.truncate(8 + len(raw) + offset)


def full_size(config_class, unet_config: dict, model_class=comfy.model_base.BaseModel) -> dict[str, torch.Tensor]:
    """The checkpoint state dict of a full-size model, on the meta device (shapes only)."""
    return checkpoint_state_dict(model_class(config_class(unet_config), device="meta"))


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    checkpoints, diffusion_models = tmp_path_factory.mktemp("checkpoints"), tmp_path_factory.mktemp("diffusion_models")
    comfy.sd.save_checkpoint(str(checkpoints / "tiny_flux.safetensors"), build_model("flux"))
    comfy.sd.save_checkpoint(str(checkpoints / "tiny_sd15.safetensors"), build_model("sd15"))
    write_header_only(checkpoints / "sdxl_base.safetensors",
                      full_size(comfy.supported_models.SDXL, FULL_UNET["sdxl"], comfy.model_base.SDXL))
    sd21 = full_size(comfy.supported_models.SD20, SD21_768_UNET)
    v_bias = torch.randn(sd21[SD2_V_BIAS].shape, generator=torch.Generator().manual_seed(0)) * 0.2  # std > 0.09: v
    write_header_only(checkpoints / "sd21_768v.safetensors", sd21, {SD2_V_BIAS: v_bias})
    write_header_only(checkpoints / "sd21_512.safetensors", sd21)  # a zero bias: an eps model
    radiance = comfy.supported_models.ChromaRadiance(CHROMA_RADIANCE_CONFIG).get_model({}, device="meta")
    write_header_only(diffusion_models / "chroma_radiance.safetensors", radiance.diffusion_model.state_dict())
    (checkpoints / "old.ckpt").write_bytes(b"a pickle")
    (checkpoints / "huge_header.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    (checkpoints / "truncated.safetensors").write_bytes(struct.pack("<Q", 4096) + b'{"a":')
    (checkpoints / "not_json.safetensors").write_bytes(struct.pack("<Q", 8) + b"\xff" * 8)
    return {"checkpoints": checkpoints, "diffusion_models": diffusion_models}


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory, model_folders):
    """Overrides the session server for this module (conftest's ``comfy`` client then talks to it)."""
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("comfy-family"),
                                  model_paths={name: str(path) for name, path in model_folders.items()}) as server:
        yield server


def family(comfy, **query) -> dict:
    response = requests.get(f"{comfy.url}/selfcascade/family", params=query, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def facts(name, known, latent_factor, size_multiple, width, height, sampling=None, shift=None) -> dict:
    return {"family": name, "known": known, "latent_factor": latent_factor, "size_multiple": size_multiple,
            "native_width": width, "native_height": height, "sampling": sampling, "shift": shift}


@pytest.mark.parametrize("loader, file, expected", [
    ("CheckpointLoaderSimple", "sdxl_base.safetensors", facts("sdxl", True, 8, 8, 1024, 1024, "EPS")),
    ("CheckpointLoaderSimple", "sd21_768v.safetensors", facts("sd2-768", True, 8, 8, 768, 768, "V_PREDICTION")),
    ("CheckpointLoaderSimple", "sd21_512.safetensors", facts("sd2", True, 8, 8, 512, 512, "EPS")),
    # the tiny flux has no guidance embedding: the host reads it as Flux schnell (shift 1)
    ("CheckpointLoaderSimple", "tiny_flux.safetensors", facts("flux", True, 8, 16, 1024, 1024, "FLUX", 1.0)),
    ("UNETLoader", "chroma_radiance.safetensors", facts("chroma-radiance", True, 1, 16, 1024, 1024, "FLUX")),
    ("CheckpointLoaderSimple", "tiny_sd15.safetensors", facts("unet", False, 8, 8, 512, 512)),  # no host config fits
    ("SelfCascadeDemoModel", "", facts("selfcascade-demo", True, 1, 8, 32, 32)),
    ("SelfCascadeDemoModel", "unet", facts("selfcascade-demo", True, 1, 8, 32, 32)),
    # the flow demo model: its patch size, and the sampling the panel needs for each stage's sigma and SNR
    ("SelfCascadeDemoModel", "flow", facts("selfcascade-demo-flow", True, 1, 4, 32, 32, "FLOW", 3.0)),
])
def test_the_family_of_a_loader_s_file(comfy, loader, file, expected):
    assert family(comfy, loader=loader, file=file) == expected


@pytest.mark.parametrize("query, fragments", [
    ({"loader": "LoraLoader", "file": "x.safetensors"}, ["loader 'LoraLoader' is not one whose file can be probed"]),
    ({"loader": "CheckpointLoaderSimple"}, ["give the file chosen in CheckpointLoaderSimple"]),
    ({"loader": "CheckpointLoaderSimple", "file": "../../../etc/passwd"}, ["is not in models/checkpoints"]),
    ({"loader": "UNETLoader", "file": "sdxl_base.safetensors"}, ["is not in models/diffusion_models"]),
    ({"loader": "CheckpointLoaderSimple", "file": "x" * 5000}, ["too long"]),
    ({"loader": "CheckpointLoaderSimple", "file": "old.ckpt"}, ["not a safetensors file"]),
    ({"loader": "CheckpointLoaderSimple", "file": "huge_header.safetensors"}, ["-byte header (more than 16 MiB)"]),
    ({"loader": "CheckpointLoaderSimple", "file": "truncated.safetensors"}, ["truncated"]),
    ({"loader": "CheckpointLoaderSimple", "file": "not_json.safetensors"}, ["its header is not JSON"]),
    ({"loader": "SelfCascadeDemoModel", "file": "dit"}, ["SelfCascadeDemoModel has no model 'dit'", "unet, flow"]),
])
def test_questions_it_cannot_answer_get_an_error_and_the_server_keeps_serving(comfy, query, fragments):
    answer = family(comfy, **query)
    assert list(answer) == ["error"] and all(fragment in answer["error"] for fragment in fragments), answer
    assert family(comfy, loader="CheckpointLoaderSimple", file="tiny_flux.safetensors")["family"] == "flux"


def test_a_changed_file_is_probed_again(comfy, model_folders):
    path = model_folders["checkpoints"] / "replaced.safetensors"
    path.write_bytes((model_folders["checkpoints"] / "tiny_flux.safetensors").read_bytes())
    assert family(comfy, loader="CheckpointLoaderSimple", file=path.name)["family"] == "flux"
    path.write_bytes((model_folders["checkpoints"] / "tiny_sd15.safetensors").read_bytes())
    os.utime(path, ns=(1, 1))  # another version, whatever the clock's resolution
    assert family(comfy, loader="CheckpointLoaderSimple", file=path.name)["family"] == "unet"
