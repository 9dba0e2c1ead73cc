"""``GET /selfcascade/family?loader=<node class>&file=<file name>``: the family of the model a loader would load.

The web panel plans the Self-Cascade KSampler's stages while the user edits, before anything has
run; the model's family (pixels per latent cell, size multiple, native size) decides the sizes. It
asks this route with the loader node wired into the sampler and the file chosen in it.

The answer is ``{"family", "known", "latent_factor", "size_multiple", "native_width",
"native_height"}`` from ``sampling/families.py`` (``known`` false: the stated fallback), or
``{"error": message}`` with status 200 for anything it cannot answer (the browser logs every 4xx).

Cheap and safe on a shared server: the file must be in the loader's own folder list (no paths from
the client); only its safetensors header is read (at most ``MAX_HEADER_BYTES``), and the host's own
``comfy.model_detection`` works on its shapes as meta tensors; a config's ``model_type`` (SD2's
v-prediction test) may read the few small tensors the host reads for it. All of it runs on a
worker thread under a timeout, never on the event loop, and answers are cached by the file's path,
modification time and size.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import struct
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import safetensors
import torch
from aiohttp import web

import comfy.model_detection
import comfy.utils
import folder_paths

from ..sampling.families import DEMO, Family, FamilyError, fallback_family, family_of_config

ROUTE = "/selfcascade/family"
LOADER_FOLDERS = {"CheckpointLoaderSimple": "checkpoints", "ImageOnlyCheckpointLoader": "checkpoints",
                  "unCLIPCheckpointLoader": "checkpoints", "UNETLoader": "diffusion_models"}
FILELESS_LOADERS = {"SelfCascadeDemoModel": DEMO}
MAX_LOADER_CHARS = 100
MAX_FILE_CHARS = 1024
MAX_HEADER_BYTES = 16 << 20  # a real checkpoint's header is a few hundred KiB
MAX_SMALL_TENSOR_BYTES = 64 << 10  # what a config's model_type may read (SD2: one 1280-wide bias)
MAX_RANK = 8
PROBE_TIMEOUT_S = 10.0
CACHED_FILES = 256
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="selfcascade-family")


class ProbeError(ValueError):
    """A question this route cannot answer; the message names the problem and the fix."""


def facts(family: Family) -> dict:
    return {"family": family.name, "known": family.known, "latent_factor": family.latent_factor,
            "size_multiple": family.size_multiple, "native_width": family.native_width,
            "native_height": family.native_height}


def read_header(path: str, size: int) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensor entries by name, metadata) of a safetensors file, from its header alone."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ProbeError(f"'{os.path.basename(path)}' is truncated ({size} bytes); re-download it.")
        (header_bytes,) = struct.unpack("<Q", head)
        if header_bytes > MAX_HEADER_BYTES:
            raise ProbeError(f"'{os.path.basename(path)}' has a {header_bytes}-byte header (more than "
                             f"{MAX_HEADER_BYTES >> 20} MiB): not a model file this route reads.")
        if 8 + header_bytes > size:
            raise ProbeError(f"'{os.path.basename(path)}' is truncated; re-download it.")
        raw = handle.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProbeError(f"'{os.path.basename(path)}' is not a safetensors file (its header is not JSON).") from None
    if not isinstance(header, dict):
        raise ProbeError(f"'{os.path.basename(path)}' is not a safetensors file (its header is not an object).")
    metadata = header.pop("__metadata__", None) or {}
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and len(shape) <= MAX_RANK
                and all(isinstance(side, int) and side >= 0 for side in shape) and isinstance(entry.get("dtype"), str)):
            raise ProbeError(f"'{os.path.basename(path)}': tensor '{name[:100]}' has no valid shape or dtype; "
                             "the file is corrupt.")
    return header, metadata if isinstance(metadata, dict) else {}


class SmallTensors(Mapping):
    """A file's tensors by name, read only when asked and only when small (for a config's model_type)."""

    def __init__(self, path: str, entries: dict[str, dict]):
        self.path, self.entries = path, entries

    def __getitem__(self, name: str) -> torch.Tensor:
        entry = self.entries[name]
        dtype = _DTYPES.get(entry["dtype"], torch.uint8)
        if torch.Size(entry["shape"]).numel() * dtype.itemsize > MAX_SMALL_TENSOR_BYTES:
            raise KeyError(name)
        with safetensors.safe_open(self.path, framework="pt", device="cpu") as handle:
            return handle.get_tensor(name)

    def __contains__(self, name) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def detect_config(shapes: dict[str, torch.Tensor], metadata: dict[str, str]) -> tuple[Optional[object], str]:
    """(model config or None, the prefix of its keys), detected as the host's checkpoint loader and, failing
    that, its diffusion-model loader (diffusers layouts too) detect them."""
    prefix = comfy.model_detection.unet_prefix_from_state_dict(shapes)
    config = comfy.model_detection.model_config_from_unet(shapes, prefix, metadata=metadata)
    if config is not None:
        return config, prefix
    unprefixed = comfy.utils.state_dict_prefix_replace(dict(shapes), {prefix: ""}, filter_keys=True)  # it pops
    if not unprefixed:  # a bare diffusion model: its keys have no prefix
        unprefixed, prefix = shapes, ""
    config = comfy.model_detection.model_config_from_unet(unprefixed, "", metadata=metadata)
    if config is not None:
        return config, prefix
    converted = comfy.model_detection.convert_diffusers_mmdit(unprefixed, "")
    if converted is not None:
        return comfy.model_detection.model_config_from_unet(converted, ""), prefix
    return comfy.model_detection.model_config_from_diffusers_unet(unprefixed), prefix


@functools.lru_cache(maxsize=CACHED_FILES)
def probe_file(path: str, modified_ns: int, size: int) -> dict:
    """The answer for one version of a file (the cache key is the version)."""
    name = os.path.basename(path)
    if not name.lower().endswith((".safetensors", ".sft")):
        return {"error": f"'{name}' is not a safetensors file: its family shows after the sampler has run."}
    try:
        entries, metadata = read_header(path, size)
        shapes = {key: torch.empty(entry["shape"], dtype=_DTYPES.get(entry["dtype"], torch.uint8), device="meta")
                  for key, entry in entries.items()}
        config, prefix = detect_config(shapes, metadata)
        if config is None:
            unet_config = comfy.model_detection.detect_unet_config(shapes, prefix)
            if unet_config is None:
                return {"error": f"ComfyUI recognises no diffusion model in '{name}'; choose a model file."}
            return facts(fallback_family("channel_mult" in unet_config,
                                         "ComfyUI recognises no model config in the file's shapes"))
        v_prediction = config.model_type(SmallTensors(path, entries), prefix).name.startswith("V_PREDICTION")
        return facts(family_of_config(type(config), v_prediction, "channel_mult" in config.unet_config))
    except (ProbeError, FamilyError) as error:
        return {"error": str(error)}


def probe(folder: str, file_name: str) -> dict:
    """The answer for ``file_name`` of model folder ``folder``; runs on a worker thread."""
    if file_name not in folder_paths.get_filename_list(folder):
        return {"error": f"'{file_name}' is not in models/{folder}; choose a file from the loader's list (press R "
                         "to refresh it)."}
    path = folder_paths.get_full_path(folder, file_name)
    stat = os.stat(path)
    return probe_file(path, stat.st_mtime_ns, stat.st_size)


async def family_answer(loader: str, file_name: str) -> dict:
    if len(loader) > MAX_LOADER_CHARS or len(file_name) > MAX_FILE_CHARS:
        return {"error": f"loader or file name too long (limits {MAX_LOADER_CHARS} and {MAX_FILE_CHARS} characters)."}
    if loader in FILELESS_LOADERS:
        return facts(FILELESS_LOADERS[loader])
    folder = LOADER_FOLDERS.get(loader)
    if folder is None:
        known = ", ".join([*LOADER_FOLDERS, *FILELESS_LOADERS])
        return {"error": f"loader '{loader}' is not one whose file can be probed ({known}); the family shows after "
                         "the sampler has run."}
    if not file_name:
        return {"error": f"give the file chosen in {loader} (file=...)."}
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_probes, probe, folder, file_name),
                                      PROBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        return {"error": f"reading '{file_name}' took longer than {PROBE_TIMEOUT_S:g} s (a slow disk?); try again."}
    except OSError as error:
        return {"error": f"'{file_name}' cannot be read ({error.strerror or error})."}
    except Exception as error:  # the host's detection on shapes no model has: an answer, not a failed request
        return {"error": f"'{file_name}' could not be read as a model ({type(error).__name__}: {str(error)[:200]})."}


async def get_family(request: web.Request) -> web.Response:
    return web.json_response(await family_answer(request.query.get("loader", ""), request.query.get("file", "")))
