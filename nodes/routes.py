"""The pack's two routes for the web extension: ``GET /selfcascade/plan`` and ``GET /selfcascade/family``.

``/selfcascade/plan``: the stage plan, from the one Python planner, so the browser shows the
Self-Cascade KSampler's stages while the user edits it instead of re-implementing the planner in
JavaScript. Query (all optional): ``base_width``/``base_height`` (pixels; leave both out when the
base comes from an unknown latent), ``scale_by``, ``target_width``, ``target_height``, ``steps``,
``scheduler``, ``k``, ``later_k``, ``stage_steps`` and ``multiple`` (the model's size multiple, 8
unless known), as on the node; ``upscale=1`` plans for Self-Cascade Upscale: the base is its input
image (encoded, not sampled: 0 steps), and a target not larger than it is one pass at the target
size. The answer is ``{"stages": [{"width", "height", "steps", "k"}, ...] or null, "high_res":
[{"k", "steps"}, ...], "notes", "schedule"}``: ``stages`` starts with the base (``k`` null);
``high_res`` is the first high-resolution stage's K and steps, then the later stages' when they differ.
``k_axis`` is the node's (auto, percent, snr). With ``sampling`` (the model's ``ModelType`` name, as
``/selfcascade/family`` answers it, or FLOW / FLUX for a ModelSamplingSD3 / ModelSamplingFlux node in
front of the sampler) and ``shift`` (0: the type's default) the schedules are the host's own for that
model, and every high-resolution stage (and ``high_res`` entry) also has ``sigma``, the noise level its
pivot is re-noised to, and ``snr``, that level's signal-to-noise ratio; without ``sampling`` they
follow SD's schedule (``schedule`` says so) and have neither.

Memory plan: with ``loader`` and ``file`` (as ``/selfcascade/family`` takes them) each stage also gets
``"memory"``, the host's own estimates for the model that file holds (``sampling/memory.py``: its
``estimate_memory`` for the stage's latent, the weights, the VAE passes of the file's own VAE where it
has one), and the answer a ``"memory"`` summary (``free``: the bytes planned against, what it is, what
is included, ``warnings`` for stages that will not fit). ``batch``, ``length`` (video frames),
``pixel_pivots`` (the KSampler's vae input is connected), ``final_decode`` (the graph decodes the
result), ``vae_file`` (the graph's VAE is this file of ``models/vae``, as VAE Loader loads it) and
``memory_budget`` (GiB to plan for instead of the server device's free memory) refine it.
The model is built from the file's header on the meta device (no weights), cached per file version.

``/selfcascade/family?loader=<node class>&file=<file name>``: the family of the model a loader
would load (pixels per latent cell, size multiple, native size decide the planned sizes before
anything has run). The answer is ``{"family", "known", "latent_factor", "size_multiple",
"native_width", "native_height"}`` from ``sampling/families.py`` (``known`` false: the stated
fallback). The file must be in the loader's own folder list (no paths from the client); only its
safetensors header is read (the host's ``comfy.utils.safetensors_header``, after the size checks it
does not make), and the host's own ``comfy.model_detection`` works on its shapes as meta tensors; a
config's ``model_type`` (SD2's v-prediction test) may read the few small tensors the host reads for
it. Answers are cached by the file's path, modification time and size.

Both answer anything they cannot answer with ``{"error": message}`` and status 200 (the browser logs
every 4xx as an error). Every browser tab talks to the same single-process server, so nothing here
may hold its event loop: a query is checked on the loop (microseconds, against
``sampling/limits.py`` or the loader's folder list), and the work (schedules of at most
``MAX_STEPS`` steps, a bounded search; a header read) is done by ``answer_off_loop`` on the pack's
one route thread under a deadline.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import struct
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import safetensors
import torch
from aiohttp import web

import comfy.model_base
import comfy.model_detection
import comfy.model_management
import comfy.model_sampling
import comfy.supported_models_base
import comfy.utils
import folder_paths

from ..models.demo import flow_demo_model
from ..sampling import limits, memory
from ..sampling.cascade import CascadeSettings
from ..sampling.families import DEMO, DEMO_FLOW, Family, FamilyError, fallback_family, family_of_config
from ..sampling.plan import StageSize, plan_from_settings
from ..sampling.schedule import StopCheck, host_model_sampling, k_axis_of, pivot_sigmas, snr_of_sigma

PLAN_ROUTE = "/selfcascade/plan"
FAMILY_ROUTE = "/selfcascade/family"
ROUTE_TIME_LIMIT_S = 5.0  # the longest a plan answer may take; well above a plan at the limits (< 1 s idle)
PROBE_TIMEOUT_S = 10.0  # the longest a family answer may take (a header read from a slow disk)
SCHEDULE_NOTE = ("steps per stage follow the SD-style discrete schedule, as no model is known here; "
                 "the sampler cuts its own model's schedule when it runs")
TOO_SLOW = (f"the server could not plan these settings within {ROUTE_TIME_LIMIT_S:g} s (it may be busy); "
            "the plan is checked again when a setting changes, or lower steps or stage_steps")
PLAN_QUERY = (limits.BASE_WIDTH, limits.BASE_HEIGHT, *limits.CASCADE, limits.SIZE_MULTIPLE, limits.SCHEDULER,
              limits.UPSCALE_PLAN, limits.K_AXIS, limits.SAMPLING, limits.SHIFT)
LOADER_FOLDERS = {"CheckpointLoaderSimple": "checkpoints", "ImageOnlyCheckpointLoader": "checkpoints",
                  "unCLIPCheckpointLoader": "checkpoints", "UNETLoader": "diffusion_models"}
# the demo model node picks a built-in model with its architecture widget, sent as the file: (family,
# sampling, shift) as it loads
FILELESS_LOADERS = {"SelfCascadeDemoModel": {"": (DEMO, None, None), "unet": (DEMO, None, None),
                                             "flow": (DEMO_FLOW, "FLOW", flow_demo_model.SHIFT)}}
MAX_LOADER_CHARS = 100
MAX_FILE_CHARS = 1024
MAX_HEADER_BYTES = 16 << 20  # a real checkpoint's header is a few hundred KiB
MAX_SMALL_TENSOR_BYTES = 64 << 10  # what a config's model_type may read (SD2: one 1280-wide bias)
MAX_RANK = 8
CACHED_FILES = 256
CACHED_MODELS = 4  # meta-device models for the memory plan (an SDXL one holds a few MB of module objects)
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}

_route_thread: Optional[ThreadPoolExecutor] = None


class _DeadlinePassed(Exception):
    """Raised inside a route's work when its deadline has passed: the answer is no longer awaited."""


class ProbeError(ValueError):
    """A question the family route cannot answer; the message names the problem and the fix."""


def _route_worker() -> ThreadPoolExecutor:
    """One thread for all of the pack's route work: requests queue behind each other instead of
    multiplying the CPU load, and a request that waited past its deadline is dropped unrun."""
    global _route_thread
    if _route_thread is None:
        _route_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfcascade-route")
    return _route_thread


async def answer_off_loop(compute: Callable[[StopCheck], dict], too_slow: str = TOO_SLOW,
                          time_limit_s: float = ROUTE_TIME_LIMIT_S) -> web.Response:
    """``compute(stop_check)`` on the route thread, answered as JSON within ``time_limit_s``.

    ``compute`` calls ``stop_check()`` before and between its steps; past the deadline that raises,
    so abandoned work ends too. A ``ValueError`` (the pack's input errors) is answered as
    ``{"error": message}``; so is running out of time (``too_slow``) and, logged with its traceback,
    any other failure.
    """
    deadline = time.monotonic() + time_limit_s

    def stop_check() -> None:
        if time.monotonic() > deadline:
            raise _DeadlinePassed

    job = asyncio.get_running_loop().run_in_executor(_route_worker(), compute, stop_check)
    try:
        answer = await asyncio.wait_for(job, time_limit_s)
    except (asyncio.TimeoutError, _DeadlinePassed):
        answer = {"error": too_slow}
    except ValueError as error:
        answer = {"error": str(error)}
    except Exception as error:  # a bug: log it for the server's owner, answer the browser all the same
        logging.exception("Self-Cascade: a route failed")
        answer = {"error": f"the server could not answer ({type(error).__name__}); its log has the details"}
    return web.json_response(answer)


# /selfcascade/plan

def plan_response(settings: dict, stop_check: StopCheck) -> dict:
    """The JSON answer for settings already checked by ``limits.parse_query(query, PLAN_QUERY)``."""
    s = settings
    known = s["sampling"] != ""
    # the model's own schedule where the browser knows its sampling; else SD1.x/SDXL's
    model_sampling = (host_model_sampling(s["sampling"], s["shift"]) if known
                      else comfy.model_sampling.ModelSamplingDiscrete())
    cascade = CascadeSettings(0, s["steps"], 1.0, "euler", s["scheduler"], s["k"], stage_steps=s["stage_steps"],
                              later_k=s["later_k"], k_axis=s["k_axis"])
    ks = [cascade.k_of_stage(1)] + ([cascade.k_of_stage(2)] if cascade.k_of_stage(2) != cascade.k_of_stage(1) else [])
    sigmas_of_k = {k: pivot_sigmas(model_sampling, s["scheduler"], s["steps"], k, s["stage_steps"], stop_check,
                                   axis=cascade.k_axis) for k in ks}
    steps_of_k = {k: len(sigmas) - 1 for k, sigmas in sigmas_of_k.items()}
    answer = {"stages": None, "high_res": [{"k": k, "steps": steps_of_k[k]} for k in ks], "notes": [],
              "schedule": schedule_note(s) if known else SCHEDULE_NOTE,
              "k_axis": k_axis_of(model_sampling, cascade.k_axis)}
    if s["base_width"] > 0 and s["base_height"] > 0:
        upscale = s["upscale"] == 1
        plan = plan_from_settings(s["base_width"], s["base_height"], s["scale_by"], s["target_width"],
                                  s["target_height"], s["multiple"], limits.MAX_SIDE, single_pass=upscale)
        answer["stages"] = [{"width": plan.base.width, "height": plan.base.height, "steps": 0 if upscale else s["steps"],
                             "k": None}]
        answer["stages"] += [{"width": size.width, "height": size.height, "k": cascade.k_of_stage(index),
                              "steps": steps_of_k[cascade.k_of_stage(index)]}
                             for index, size in enumerate(plan.stages[1:], start=1)]
        answer["notes"] = list(plan.notes)
    for stage in [*answer["high_res"], *(answer["stages"] or [])[1:]] if known else []:  # where each re-noises its pivot
        sigma = float(sigmas_of_k[stage["k"]][0])
        stage.update(sigma=sigma, snr=snr_of_sigma(model_sampling, sigma))
    return answer


def schedule_note(settings: dict) -> str:
    shift = f" at shift {settings['shift']:g}" if settings["shift"] > 0 else " at its default shift"
    return (f"steps, sigma and SNR per stage follow the connected model's {settings['sampling']} schedule"
            f"{shift if settings['sampling'] in ('FLOW', 'FLUX') else ''}")


def plan_with_memory(settings: dict, folder: Optional[str], file_name: str, query: dict, stop_check: StopCheck,
                     vae_file: str = "") -> dict:
    """The plan answer, with the memory plan of ``file_name`` in model folder ``folder`` (None: no file to read)."""
    answer = plan_response(settings, stop_check)
    if answer["stages"] is None:
        answer["memory"] = {"error": "memory is estimated once the base size is known"}
    elif folder is None:
        answer["memory"] = {"error": "this model is not read from a file: no memory plan before the run"}
    else:
        try:
            answer["memory"] = memory_response(folder, file_name, answer["stages"], query, settings["upscale"] == 1,
                                               stop_check, vae_file)
        except (ProbeError, FamilyError) as error:
            answer["memory"] = {"error": str(error)}
    return answer


async def get_plan(request: web.Request) -> web.Response:
    loader, file_name = request.query.get("loader", ""), request.query.get("file", "")
    vae_file = request.query.get("vae_file", "")
    try:
        settings = limits.parse_query(request.query, PLAN_QUERY)
        limits.check_sampling(settings["sampling"], settings["shift"])
        if not loader:
            return await answer_off_loop(lambda stop_check: plan_response(settings, stop_check))
        folder = probe_folder(loader, file_name)
        query = limits.parse_query(request.query, limits.MEMORY_QUERY)
        if len(vae_file) > MAX_FILE_CHARS:
            raise ProbeError(f"vae_file too long (limit {MAX_FILE_CHARS} characters).")
    except (limits.InputLimitError, ProbeError) as error:
        return web.json_response({"error": str(error)})
    too_slow = f"planning with '{file_name}' took longer than {PROBE_TIMEOUT_S:g} s (a slow disk?); try again."
    return await answer_off_loop(
        lambda stop_check: plan_with_memory(settings, folder, file_name, query, stop_check, vae_file),
        too_slow, PROBE_TIMEOUT_S)


# /selfcascade/family

def facts(family: Family, config=None, model_type: str = "") -> dict:
    """The family's facts; with the model's config and ``ModelType`` name also its sampling (one the plan
    route can build, else null) and the config's default shift (null where it sets none)."""
    shift = config.sampling_settings.get("shift") if config is not None else None
    return {"family": family.name, "known": family.known, "latent_factor": family.latent_factor,
            "size_multiple": family.size_multiple, "native_width": family.native_width,
            "native_height": family.native_height,
            "sampling": model_type if model_type and model_type in limits.SAMPLING.options else None,
            "shift": float(shift) if isinstance(shift, (int, float)) and 0.0 < shift <= limits.SHIFT.high else None}


def read_header(path: str, size: int) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensor entries by name, metadata) of a safetensors file of ``size`` bytes, from its header alone."""
    name = os.path.basename(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8:
        raise ProbeError(f"'{name}' is truncated ({size} bytes); re-download it.")
    (header_bytes,) = struct.unpack("<Q", head)
    if header_bytes > MAX_HEADER_BYTES:
        raise ProbeError(f"'{name}' has a {header_bytes}-byte header (more than {MAX_HEADER_BYTES >> 20} MiB): not a "
                         "model file this route reads.")
    if 8 + header_bytes > size:
        raise ProbeError(f"'{name}' is truncated; re-download it.")
    raw = comfy.utils.safetensors_header(path, max_size=MAX_HEADER_BYTES)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProbeError(f"'{name}' is not a safetensors file (its header is not JSON).") from None
    if not isinstance(header, dict):
        raise ProbeError(f"'{name}' is not a safetensors file (its header is not an object).")
    metadata = header.pop("__metadata__", None) or {}
    for key, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and len(shape) <= MAX_RANK
                and all(isinstance(side, int) and side >= 0 for side in shape) and isinstance(entry.get("dtype"), str)):
            raise ProbeError(f"'{name}': tensor '{key[:100]}' has no valid shape or dtype; the file is corrupt.")
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


def file_shapes(path: str, size: int) -> tuple[dict[str, dict], dict[str, str], dict[str, torch.Tensor]]:
    """(header entries, metadata, every tensor as a meta tensor of its shape and dtype) of a safetensors file."""
    entries, metadata = read_header(path, size)
    shapes = {key: torch.empty(entry["shape"], dtype=_DTYPES.get(entry["dtype"], torch.uint8), device="meta")
              for key, entry in entries.items()}
    return entries, metadata, shapes


def model_type_of(config, state_dict: Mapping, prefix: str) -> str:
    """The ``ModelType`` name of the model the host's loader builds from ``config``: the config's own
    ``model_type`` where its ``get_model`` passes it on (SD2's v test, SDXL's variants), else the default
    of the model class its ``get_model`` names (Flux: FLUX; SD3, Wan: FLOW), which the config does not state."""
    get_model = type(config).get_model
    if get_model is comfy.supported_models_base.BASE.get_model or "model_type" in get_model.__code__.co_names:
        return config.model_type(state_dict, prefix).name  # the config's model_type is what the model gets
    for name in get_model.__code__.co_names:
        model_class = getattr(comfy.model_base, name, None)
        if isinstance(model_class, type) and issubclass(model_class, comfy.model_base.BaseModel):
            default = inspect.signature(model_class.__init__).parameters.get("model_type")
            if default is not None and isinstance(default.default, comfy.model_base.ModelType):
                return default.default.name
    return config.model_type(state_dict, prefix).name


def detected_family(config, tensors: Mapping, prefix: str) -> tuple[Family, str]:
    """The family of a model file the host detected as ``config``, and the ``ModelType`` name its loader gives it."""
    model_type = model_type_of(config, tensors, prefix)
    unet = "channel_mult" in config.unet_config
    return family_of_config(type(config), model_type.startswith("V_PREDICTION"), unet), model_type


@functools.lru_cache(maxsize=CACHED_FILES)
def probe_file(path: str, modified_ns: int, size: int) -> dict:
    """The answer for one version of a file (the cache key is the version)."""
    name = os.path.basename(path)
    if not name.lower().endswith((".safetensors", ".sft")):
        return {"error": f"'{name}' is not a safetensors file: its family shows after the sampler has run."}
    try:
        entries, metadata, shapes = file_shapes(path, size)
        config, prefix = detect_config(shapes, metadata)
        if config is None:
            unet_config = comfy.model_detection.detect_unet_config(shapes, prefix)
            if unet_config is None:
                return {"error": f"ComfyUI recognises no diffusion model in '{name}'; choose a model file."}
            return facts(fallback_family("channel_mult" in unet_config,
                                         "ComfyUI recognises no model config in the file's shapes"))
        family, model_type = detected_family(config, SmallTensors(path, entries), prefix)
        return facts(family, config, model_type)
    except (ProbeError, FamilyError) as error:
        return {"error": str(error)}
    except OSError:
        raise  # not this version's answer: the file changed or went away while it was read
    except Exception as error:  # the host's detection on shapes no model has: an answer, not a failed request
        return {"error": f"'{name}' could not be read as a model ({type(error).__name__}: {str(error)[:200]})."}


def file_version(folder: str, file_name: str) -> tuple[str, int, int]:
    """(path, modification time, size) of ``file_name`` of model folder ``folder``: a cache key per file version."""
    if file_name not in folder_paths.get_filename_list(folder):
        raise ProbeError(f"'{file_name}' is not in models/{folder}; choose a file from the loader's list (press R "
                         "to refresh it).")
    try:
        path = folder_paths.get_full_path(folder, file_name)
        stat = os.stat(path)
    except OSError as error:
        raise ProbeError(f"'{file_name}' cannot be read ({error.strerror or error}).") from None
    return path, stat.st_mtime_ns, stat.st_size


def probe(folder: str, file_name: str, stop_check: StopCheck) -> dict:
    """The answer for ``file_name`` of model folder ``folder``; runs on the route thread."""
    stop_check()
    try:
        path, modified_ns, size = file_version(folder, file_name)
        return probe_file(path, modified_ns, size)
    except ProbeError as error:
        return {"error": str(error)}
    except OSError as error:
        raise ProbeError(f"'{file_name}' cannot be read ({error.strerror or error}).") from None


# the memory plan (/selfcascade/plan with loader and file)

@dataclass(frozen=True)
class MemoryModel:
    """What the memory plan asks about one model file: the host's model and the file's VAE on the meta device."""

    model: object  # ModelPatcher, meta-device weights
    vae: Optional[object]  # comfy.sd.VAE, meta-device weights; None: the file has no VAE
    family: Family


@functools.lru_cache(maxsize=CACHED_MODELS)
def memory_model(path: str, modified_ns: int, size: int) -> MemoryModel:
    """The model (and VAE) of one version of a file, as the host's checkpoint loader would build them, without weights."""
    name = os.path.basename(path)
    if not name.lower().endswith((".safetensors", ".sft")):
        raise ProbeError(f"'{name}' is not a safetensors file: no memory plan before the run.")
    entries, metadata, shapes = file_shapes(path, size)
    config, prefix = detect_config(shapes, metadata)
    if config is None:
        raise ProbeError(f"ComfyUI recognises no model config in '{name}': no memory plan before the run.")
    tensors = SmallTensors(path, entries)
    family, _ = detected_family(config, tensors, prefix)
    model = memory.meta_model(config, shapes, prefix, tensors)
    try:
        vae = memory.meta_vae(config, shapes)
    except Exception:  # a VAE layout the host's VAE class does not take on the meta device: the plan says none
        logging.debug("Self-Cascade: no meta-device VAE for %s", name, exc_info=True)
        vae = None
    return MemoryModel(model, vae, family)


@functools.lru_cache(maxsize=CACHED_MODELS)
def memory_vae(path: str, modified_ns: int, size: int):
    """The VAE of one version of a VAE file, as the host's VAE Loader would build it, without weights."""
    name = os.path.basename(path)
    if not name.lower().endswith((".safetensors", ".sft")):
        raise ProbeError(f"'{name}' is not a safetensors file")
    _, metadata, shapes = file_shapes(path, size)
    return memory.meta_vae_file(shapes, metadata)


def graph_vae(vae_file: str, held: MemoryModel) -> tuple[Optional[object], str]:
    """(the VAE the graph uses, in words): ``vae_file`` of models/vae when given, else the model file's own."""
    if not vae_file:
        return held.vae, ("the model file's own VAE" if held.vae is not None
                          else "no VAE in the model file: VAE passes not included")
    try:
        return memory_vae(*file_version("vae", vae_file)), f"'{vae_file}'"
    except ProbeError as error:
        return None, f"VAE passes not included ({error})"
    except Exception as error:  # the host's VAE class on shapes no VAE has, or a file that changed while read
        return None, f"VAE passes not included ('{vae_file}': {type(error).__name__})"


def memory_response(folder: str, file_name: str, stages: list[dict], query: dict, upscale: bool,
                    stop_check: StopCheck, vae_file: str = "") -> dict:
    """The memory plan of ``stages`` (the plan answer's, each given its ``"memory"``) and its summary."""
    stop_check()
    path, modified_ns, size = file_version(folder, file_name)
    try:
        held = memory_model(path, modified_ns, size)
    except (ProbeError, FamilyError):
        raise
    except OSError as error:  # the file changed or went away while it was read
        raise ProbeError(f"'{file_name}' cannot be read ({error.strerror or error}).") from None
    except Exception as error:  # the host's classes on shapes no model has
        raise ProbeError(f"'{file_name}': ComfyUI could not build its model without weights ({type(error).__name__}: "
                         f"{str(error)[:200]}); no memory plan before the run.") from None
    stop_check()
    latent_format = held.model.get_model_object("latent_format")
    frames = held.family.latent_frames(query["length"]) if getattr(latent_format, "latent_dimensions", 2) == 3 else 1
    decode_fix = "keep tile = auto (it tiles a pass that does not fit)" if upscale else None
    vae, vae_words = graph_vae(vae_file, held)
    stop_check()
    plan = memory.stage_memory(held.model, [StageSize(s["width"], s["height"]) for s in stages],
                               held.family.latent_factor, query["batch"], frames, vae,
                               pixel_pivots=bool(query["pixel_pivots"]) and not upscale, encode_input=upscale,
                               final_decode=upscale or bool(query["final_decode"]), decode_fix=decode_fix)
    budget = query["memory_budget"]
    free = int(budget * memory.GIB) if budget > 0 else memory.device_free_bytes()
    device = comfy.model_management.get_torch_device()
    warnings = []
    for index, (stage, estimate) in enumerate(zip(stages, plan)):
        stage["memory"] = estimate.as_dict(free)
        if stage["memory"]["fits"] == "no":
            label = ("input" if upscale else "base") if index == 0 else f"stage {index}"
            warnings.append(f"{label} ({stage['width']}x{stage['height']}) will not fit: {stage['memory']['advice']}")
    return {"free": free, "free_is": (f"memory_budget {budget:g} GiB" if budget > 0 else
                                      f"free on {device} now, with what loaded models hold"),
            "model": held.family.name, "dtype": str(held.model.model.get_dtype()).removeprefix("torch."),
            "includes": f"ComfyUI's own estimates: sampling (CFG's doubled batch), weights; VAE: {vae_words}",
            "warnings": warnings}


def probe_folder(loader: str, file_name: str) -> Optional[str]:
    """The model folder ``loader`` reads ``file_name`` from (None: a loader without a file); checked on the loop."""
    if len(loader) > MAX_LOADER_CHARS or len(file_name) > MAX_FILE_CHARS:
        raise ProbeError(f"loader or file name too long (limits {MAX_LOADER_CHARS} and {MAX_FILE_CHARS} characters).")
    if loader in FILELESS_LOADERS:
        return None
    folder = LOADER_FOLDERS.get(loader)
    if folder is None:
        known = ", ".join([*LOADER_FOLDERS, *FILELESS_LOADERS])
        raise ProbeError(f"loader '{loader}' is not one whose file can be probed ({known}); the family shows after "
                         "the sampler has run.")
    if not file_name:
        raise ProbeError(f"give the file chosen in {loader} (file=...).")
    return folder


async def get_family(request: web.Request) -> web.Response:
    loader, file_name = request.query.get("loader", ""), request.query.get("file", "")
    try:
        folder = probe_folder(loader, file_name)
    except ProbeError as error:
        return web.json_response({"error": str(error)})
    if folder is None:
        built_in = FILELESS_LOADERS[loader].get(file_name)
        if built_in is None:
            return web.json_response({"error": f"{loader} has no model '{file_name}' (it has "
                                               f"{', '.join(name for name in FILELESS_LOADERS[loader] if name)})."})
        family, sampling, shift = built_in
        return web.json_response({**facts(family), "sampling": sampling, "shift": shift})
    too_slow = f"reading '{file_name}' took longer than {PROBE_TIMEOUT_S:g} s (a slow disk?); try again."
    return await answer_off_loop(lambda stop_check: probe(folder, file_name, stop_check), too_slow, PROBE_TIMEOUT_S)


def register_routes() -> bool:
    """Add both routes to the running ComfyUI server; False (nothing done) without one."""
    server = sys.modules.get("server")  # the host's server.py, imported by main.py before custom nodes
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    instance.routes.get(PLAN_ROUTE)(get_plan)
    instance.routes.get(FAMILY_ROUTE)(get_family)
    return True
