"""Make an exported workflow runnable on CPU in seconds: the real loaders become the test pack's tiny models.

``to_tiny(prompt, run)`` takes the API prompt the frontend exported (``graphToPrompt().output``) and
returns a copy where:
- checkpoint and UNet loaders give ``TinyModelLoader(run.family)``; VAE loaders and a checkpoint's
  VAE output give ``TinyVAE`` (SD's 4-channel layout), or ``TinyVideoVAE`` for the Wan family; CLIP
  loaders go, and every CLIPTextEncode becomes ``TinyConditioning(run.family)``;
- a LoRA loader and a ControlNet apply node are bypassed (no tiny LoRA or ControlNet exists; the
  cascade's ControlNet composition is tested in tests/integration), their inputs go straight through;
- empty latents are ``run.base`` pixels; Self-Cascade Base Latent, whose native sizes are too big
  for a CPU, becomes an empty latent of ``run.base`` and its target outputs become ``run.target``;
- samplers, Self-Cascade Upscale and Pivot Reschedule run ``STEPS`` steps; an upsampler adapter file is
  ``run.adapter``; Load Image and Load Video read what the browser tests put in the server's input folder;
- ``run.overrides`` sets inputs by node type (e.g. a short training run);
- for families without a tiny VAE of their latent layout (``run.latent_output``), decoding and
  saving images is replaced by a SaveLatent of the sampler's result.
Node ids stay, so the frontend's nodes still receive their own ``executed`` events.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

STEPS = 4
INPUT_IMAGE = "example.png"  # Load Image's file in the shipped workflows, as in ComfyUI's own input folder
INPUT_VIDEO = "input_video.mp4"  # Load Video's file in the shipped workflows
INPUT_IMAGE_SIZE, INPUT_VIDEO_SIZE, INPUT_VIDEO_FRAMES = 64, 32, 6  # 6 frames: not 4n + 1, padded for the Wan VAE
TINY_ADAPTER = "tiny_sdxl.safetensors"  # made for the tiny SDXL model by conftest.py
TINY_FLUX_CHECKPOINT = "tiny_flux.safetensors"  # the tiny Flux model as a checkpoint, by conftest.py
TINY_VAE_ID = "tiny_vae"
SAVE_LATENT_ID = "tiny_save_latent"
MODEL_LOADERS = {"CheckpointLoaderSimple", "UNETLoader"}
DROPPED = {"CLIPLoader", "DualCLIPLoader", "ControlNetLoader", "Canny"}
BYPASSED = {"LoraLoader": ("model", "clip"), "ControlNetApplyAdvanced": ("positive", "negative")}
IMAGE_OUTPUT = {"VAEDecode", "VAEDecodeTiled", "SaveImage", "SaveAnimatedWEBP"}
STEPPED = {"SelfCascadeKSampler", "SelfCascadeUpscale", "KSampler", "SelfCascadePivotReschedule"}
SAMPLERS = ("SelfCascadeKSampler", "SamplerCustom")


@dataclass(frozen=True)
class TinyRun:
    family: Optional[str]  # tests/tiny_pack family; None: the workflow's own shipped model, nothing swapped
    base: tuple[int, int]  # base size in pixels
    expect: tuple[int, int]  # output size in pixels (what the plan says for these settings)
    target: Optional[tuple[int, int]] = None  # replaces a Self-Cascade Base Latent's target
    latent_output: bool = False  # no tiny VAE for this latent layout: save the latent instead
    adapter: Optional[str] = None  # file name in the test server's upsampler_adapters folder
    overrides: dict = field(default_factory=dict)  # class_type -> {input: value}, applied last
    why: str = ""  # what the swap leaves out, for the reader


def _empty_latent(run: TinyRun) -> dict:
    width, height = run.base
    if run.family == "wan":
        return {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": width, "height": height, "length": 1,
                                                                    "batch_size": 1}}
    kind = "EmptySD3LatentImage" if run.family == "flux" else "EmptyLatentImage"
    return {"class_type": kind, "inputs": {"width": width, "height": height, "batch_size": 1}}


def _tiny_vae(run: TinyRun) -> dict:
    return {"class_type": "TinyVideoVAE" if run.family == "wan" else "TinyVAE", "inputs": {"seed": 0}}


def to_tiny(prompt: dict, run: TinyRun) -> dict:
    tiny = copy.deepcopy(prompt)
    if run.family is None:
        for node in tiny.values():
            if node["class_type"] in STEPPED:
                node["inputs"]["steps"] = STEPS
        return tiny
    redirect: dict[tuple[str, int], object] = {}  # (node id, output index) -> link or literal
    for node_id, node in list(tiny.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind in MODEL_LOADERS:
            tiny[node_id] = {"class_type": "TinyModelLoader", "inputs": {"family": run.family, "seed": 0}}
            redirect[(node_id, 2)] = [TINY_VAE_ID, 0]  # a checkpoint's VAE
        elif kind == "VAELoader":
            tiny[node_id] = _tiny_vae(run)
        elif kind == "CLIPTextEncode":
            tiny[node_id] = {"class_type": "TinyConditioning", "inputs": {"family": run.family, "seed": int(node_id)}}
        elif kind in DROPPED:
            del tiny[node_id]
        elif kind in BYPASSED:
            for index, name in enumerate(BYPASSED[kind]):
                redirect[(node_id, index)] = inputs[name]
            del tiny[node_id]
        elif kind == "SelfCascadeBaseLatent":
            tiny[node_id] = _empty_latent(run)
            redirect[(node_id, 1)], redirect[(node_id, 2)] = run.target
        elif kind.startswith("Empty") and "Latent" in kind:
            tiny[node_id] = _empty_latent(run)
        elif kind == "SelfCascadeLoadUpsamplerAdapter":
            inputs["adapter_name"] = run.adapter
        if kind in STEPPED:
            inputs["steps"] = STEPS
        if node_id in tiny:
            tiny[node_id]["inputs"].update(run.overrides.get(kind, {}))
    tiny[TINY_VAE_ID] = _tiny_vae(run)
    if run.latent_output:
        for node_id in [i for i, n in tiny.items() if n["class_type"] in IMAGE_OUTPUT | {"TinyVAE", "TinyVideoVAE"}]:
            del tiny[node_id]
        sampler = next(i for i, n in tiny.items() if n["class_type"] in SAMPLERS)
        tiny[SAVE_LATENT_ID] = {"class_type": "SaveLatent",
                                "inputs": {"samples": [sampler, 0], "filename_prefix": "browser/tiny"}}
    for node in tiny.values():
        for name, value in node["inputs"].items():
            while isinstance(value, list) and (value[0], value[1]) in redirect:
                value = redirect[(value[0], value[1])]
            if isinstance(value, list) and value[0] not in tiny:
                raise AssertionError(f"{node['class_type']}.{name} still links removed node {value[0]}")
            node["inputs"][name] = value
    return tiny
