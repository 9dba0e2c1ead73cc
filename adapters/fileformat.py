"""The adapter file: safetensors weights plus string metadata describing them (torch + safetensors only).

Also reads the official ``upsampler_only.pth`` (a dict with 'state_dict', keys
``unet.feature_upsampler{0..3}.{0,1}.<layer>``) with ``torch.load(weights_only=True)``, checking
every key and shape; nothing from a file is unpickled into objects or evaluated. Metadata values
are JSON, parsed with ``json.loads`` and checked for type and size.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Mapping

import safetensors
import safetensors.torch
import torch

from .modules import (ALL_VARIANTS, BACKBONE, DIT_POINT_KINDS, DIT_VARIANTS, INJECTIONS, OFFICIAL_SDXL,
                      OFFICIAL_SDXL_POINTS, UNET_POINT_KINDS, AdapterSpec, UpsamplerAdapter, build_module)

FORMAT = "selfcascade.upsampler_adapter"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # the header of a few hundred tensors is a few KiB
MAX_VALUE_CHARS = 16384
MAX_POINTS = 16
MAX_PROVENANCE = 64
OFFICIAL_PREFIX = "unet.feature_upsampler"
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
OFFICIAL_SDXL_PARAMETERS = 145_457_280  # upsampler_only.pth: feature_upsampler0..3 at SDXL widths
# what torch.load may allocate for a .pth: the official layout in fp32 plus room for its pickle; the
# zip directory declares every record's size, so anything larger is refused before a byte is read
MAX_PTH_BYTES = OFFICIAL_SDXL_PARAMETERS * 4 + (64 << 20)
MAX_PTH_RECORDS = 4096  # the official file has one record per tensor (a few hundred)
CONVERT_HINT = "convert it with scripts/convert_official_adapter.py"


class AdapterError(ValueError):
    """An adapter file or adapter/model pair that cannot be used; the message names the file or mismatch and the fix."""


class WriteFailed(OSError):
    """A file could not be written; the message names it and the fix, and nothing was replaced."""


@contextlib.contextmanager
def replaced_atomically(path: Path | str) -> Iterator[Path]:
    """A temporary name next to ``path`` to write to, renamed over ``path`` when the block completes.

    The one way this pack writes files: a reader never sees half a file, and a failure (disk full)
    leaves the old file, if any, and no temporary behind. Nested blocks rename only once every
    one of them has written, so files that belong together are replaced together or not at all.
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except WriteFailed:
        raise
    except OSError as error:
        raise WriteFailed(error.errno, f"could not write '{path}' ({error.strerror or error}); free disk space or "
                                       "choose another folder. Nothing was replaced.") from error
    finally:
        temporary.unlink(missing_ok=True)


def spec_to_metadata(spec: AdapterSpec) -> dict[str, str]:
    fields = asdict(spec)
    fields["provenance"] = dict(spec.provenance)
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            **{key: json.dumps(value) for key, value in fields.items()}}


def _json(metadata: Mapping[str, str], key: str, source: str):
    if key not in metadata:
        raise AdapterError(f"{source}: metadata '{key}' is missing; re-save the adapter with this node pack.")
    raw = metadata[key]
    if len(raw) > MAX_VALUE_CHARS:
        raise AdapterError(f"{source}: metadata '{key}' is {len(raw)} characters (limit {MAX_VALUE_CHARS}); the file is corrupt.")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise AdapterError(f"{source}: metadata '{key}' is not valid JSON ({error}); the file is corrupt.") from None


def _int(value, key: str, source: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise AdapterError(f"{source}: metadata '{key}' must be an integer in [{low}, {high}], got {value!r}.")
    return value


def _choice(value, key: str, source: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise AdapterError(f"{source}: metadata '{key}' is {value!r}; expected one of {', '.join(options)}. "
                           "The file may come from a newer version of the node pack: update it.")
    return value


def spec_from_metadata(metadata: Mapping[str, str], source: str) -> AdapterSpec:
    """Validate and parse the metadata of an adapter file."""
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{source}: not a Self-Cascade upsampler adapter (no '{FORMAT}' format tag); if it is the "
                           f"official upsampler_only.pth, {CONVERT_HINT}.")
    version = metadata.get("format_version", "")
    if not version.isdigit() or int(version) < 1:
        raise AdapterError(f"{source}: format_version {version!r} is not a positive integer; the file is corrupt.")
    if int(version) > FORMAT_VERSION:
        raise AdapterError(f"{source}: adapter format version {version} is newer than this node pack reads "
                           f"({FORMAT_VERSION}); update Self-Cascade for ComfyUI.")
    variant = _choice(_json(metadata, "variant", source), "variant", source, ALL_VARIANTS)
    injection = _choice(_json(metadata, "injection", source), "injection", source, INJECTIONS)
    family = _json(metadata, "family", source)
    if not isinstance(family, str) or not re.fullmatch(r"[a-z0-9_.-]{1,32}", family):
        raise AdapterError(f"{source}: metadata 'family' must be a short model-family name, got {family!r}.")
    channels = _json(metadata, "channels", source)
    points = _json(metadata, "points", source)
    if not isinstance(channels, list) or not isinstance(points, list) or not 1 <= len(channels) <= MAX_POINTS \
            or len(points) != len(channels):
        raise AdapterError(f"{source}: metadata 'channels' and 'points' must be lists of equal length 1..{MAX_POINTS}.")
    channels = tuple(_int(c, "channels", source, 1, 65536) for c in channels)
    kinds = DIT_POINT_KINDS if variant in DIT_VARIANTS else UNET_POINT_KINDS  # a DiT's blocks, or a UNet's
    parsed_points = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and point[0] in kinds):
            raise AdapterError(f"{source}: metadata 'points' entries of a {variant} adapter must be "
                               f"[{'|'.join(json.dumps(kind) for kind in kinds)}, index], got {point!r}.")
        parsed_points.append((point[0], _int(point[1], "points", source, 0, 1024)))
    if variant in DIT_VARIANTS and injection != BACKBONE:
        raise AdapterError(f"{source}: a {variant} adapter adds to the image tokens after its blocks (injection "
                           f"'{BACKBONE}'), not '{injection}'; the file is corrupt.")
    k_range = _json(metadata, "k_range", source)
    if not (isinstance(k_range, list) and len(k_range) == 2 and all(type(k) in (int, float) for k in k_range)
            and 0.0 <= k_range[0] < k_range[1] <= 1.0):
        raise AdapterError(f"{source}: metadata 'k_range' must be [low, high] with 0 <= low < high <= 1, got {k_range!r}.")
    provenance = _json(metadata, "provenance", source)
    if not isinstance(provenance, dict) or len(provenance) > MAX_PROVENANCE or not all(
            isinstance(key, str) and len(key) <= 64
            and (isinstance(value, (int, float, bool)) or isinstance(value, str) and len(value) <= 1024)
            for key, value in provenance.items()):
        raise AdapterError(f"{source}: metadata 'provenance' must be a flat object of at most {MAX_PROVENANCE} "
                           "short strings or numbers.")
    spec = AdapterSpec(variant, family, channels, _int(_json(metadata, "emb_dim", source), "emb_dim", source, 1, 65536),
                       injection, tuple(parsed_points), (float(k_range[0]), float(k_range[1])),
                       _int(_json(metadata, "rank", source), "rank", source, 1, 1024),
                       _int(_json(metadata, "time_dim", source), "time_dim", source, 1, 4096), provenance)
    if variant in DIT_VARIANTS and spec.emb_dim % 2:
        raise AdapterError(f"{source}: metadata 'emb_dim' of a {variant} adapter is the width of a sinusoidal "
                           f"embedding (cosines and sines), so even; got {spec.emb_dim}.")
    if variant == OFFICIAL_SDXL and (spec.points != OFFICIAL_SDXL_POINTS or family != "sdxl"):
        raise AdapterError(f"{source}: an official-sdxl adapter must have SDXL's points {list(OFFICIAL_SDXL_POINTS)}.")
    return spec


def check_weights(spec: AdapterSpec, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Every key and shape of ``state`` against the module ``spec`` describes (works on meta tensors)."""
    with torch.device("meta"):
        expected = {key: tuple(t.shape) for key, t in build_module(spec).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{key} {tuple(state[key].shape)} (expected {expected[key]})"
                   for key in set(expected) & set(state) if tuple(state[key].shape) != expected[key])
    if missing or unexpected or wrong:
        parts = [f"{name}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise AdapterError(f"{source}: the weights do not match a {spec.variant} adapter with channels "
                           f"{list(spec.channels)} ({'; '.join(parts)}); the file is corrupt or from another tool.")


def _module_with(spec: AdapterSpec, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    """The module for ``spec`` holding exactly ``state`` (checked, all values finite), without copying it."""
    check_weights(spec, state, source)
    for key, tensor in state.items():
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise AdapterError(f"{source}: tensor '{key}' is not finite floating point; the file is corrupt, re-download it.")
    with torch.device("meta"):
        module = build_module(spec)
    module.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
    return module


def _check_header(path: Path) -> None:
    """Reject what is not a complete safetensors file before parsing it (cheap, and names the problem)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip container
        raise AdapterError(f"{path}: this is a pickle (.pth) checkpoint, not safetensors; if it is the official "
                           f"upsampler_only.pth, {CONVERT_HINT}.")
    if len(head) < 9:
        raise AdapterError(f"{path}: the file is truncated ({size} bytes); re-download or re-save it.")
    (header_bytes,) = struct.unpack("<Q", head[:8])
    if header_bytes > MAX_HEADER_BYTES or head[8:9] != b"{":
        raise AdapterError(f"{path}: not a safetensors adapter (no JSON header); choose an adapter file, or if it is "
                           f"the official upsampler_only.pth, {CONVERT_HINT}.")
    if 8 + header_bytes > size:
        raise AdapterError(f"{path}: the file is truncated ({size} bytes, header alone needs {8 + header_bytes}); "
                           "re-download or re-save it.")


def _load_safetensors(path: Path) -> UpsamplerAdapter:
    _check_header(path)
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as handle:
            spec = spec_from_metadata(handle.metadata() or {}, str(path))
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except AdapterError:
        raise
    except Exception as error:  # safetensors' own parse errors: truncated data, bad offsets, bad JSON
        raise AdapterError(f"{path}: corrupt or truncated safetensors file ({error}); re-download or re-save it.") from None
    return UpsamplerAdapter(spec, _module_with(spec, state, str(path)))


def official_spec(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> AdapterSpec:
    """The spec of an official state dict (official key names), widths read from its own shapes."""
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise AdapterError(f"{source}: entries {not_tensors[:4]} are not tensors; not the official upsampler layout.")
    channels = []
    for index in range(len(OFFICIAL_SDXL_POINTS)):
        norm = state_dict.get(f"{OFFICIAL_PREFIX}{index}.0.in_layers.0.weight")
        if norm is None or norm.ndim != 1:
            raise AdapterError(f"{source}: '{OFFICIAL_PREFIX}{index}.0.in_layers.0.weight' is missing or not 1-D; "
                               "not the official Self-Cascade upsampler_only.pth layout.")
        channels.append(norm.shape[0])
    emb_weight = state_dict.get(f"{OFFICIAL_PREFIX}0.0.emb_layers.1.weight")
    if emb_weight is None or emb_weight.ndim != 2:
        raise AdapterError(f"{source}: '{OFFICIAL_PREFIX}0.0.emb_layers.1.weight' is missing or not 2-D; "
                           "not the official Self-Cascade upsampler_only.pth layout.")
    return AdapterSpec(OFFICIAL_SDXL, "sdxl", tuple(channels), emb_weight.shape[1], "backbone", OFFICIAL_SDXL_POINTS,
                       (0.0, 1.0), provenance={"source": "official Self-Cascade SDXL upsampler_only.pth",
                                               "file": Path(source).name[:200]})


def from_official_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``unet.feature_upsamplerN.*`` -> ``upsamplers.N.*``; other keys unchanged (and then refused as unexpected)."""
    return {key.replace(OFFICIAL_PREFIX, "upsamplers.", 1) if key.startswith(OFFICIAL_PREFIX) else key: value
            for key, value in state_dict.items()}


def to_official_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``upsamplers.N.*`` -> ``unet.feature_upsamplerN.*``: the inverse of ``from_official_keys``."""
    return {OFFICIAL_PREFIX + key.removeprefix("upsamplers.") if key.startswith("upsamplers.") else key: value
            for key, value in state_dict.items()}


def official_adapter(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> UpsamplerAdapter:
    """The official SDXL upsamplers from their state dict, every key and shape checked."""
    spec = official_spec(state_dict, source)
    return UpsamplerAdapter(spec, _module_with(spec, from_official_keys(state_dict), source))


def check_pth_archive(path: Path) -> None:
    """Refuse, from its zip directory alone, a .pth that could not be the official upsamplers.

    ``torch.load`` allocates every record the archive declares before our checks see a tensor, so
    a small file that declares a gigabyte would cost a gigabyte. torch.save writes a zip archive of
    uncompressed records; a legacy (non-zip) pickle declares its sizes only inside the pickle, so it
    is refused outright (the official file is a zip archive).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise AdapterError(f"{path}: not a zip-format torch checkpoint (a legacy or plain pickle, or a damaged file). "
                           "Pickle files are never unpickled here; use a .safetensors adapter, or the official "
                           "upsampler_only.pth.") from None
    declared = sum(record.file_size for record in records)
    if len(records) > MAX_PTH_RECORDS or declared > MAX_PTH_BYTES:
        raise AdapterError(f"{path}: declares {declared:,} bytes in {len(records)} records, more than the official "
                           f"upsamplers need ({MAX_PTH_BYTES:,} bytes in at most {MAX_PTH_RECORDS}); it was not read. "
                           "Use the official upsampler_only.pth or a .safetensors adapter.")
    compressed = [record.filename for record in records if record.compress_type != zipfile.ZIP_STORED]
    if compressed or declared > path.stat().st_size:
        raise AdapterError(f"{path}: its records are {'compressed' if compressed else 'larger than the file'}, which "
                           "torch.save never writes; it was not read. Re-download the official upsampler_only.pth.")


def read_official_pth(path: Path | str) -> UpsamplerAdapter:
    """Read the official ``upsampler_only.pth`` without unpickling objects (``weights_only=True``), after
    ``check_pth_archive`` has bounded what reading it may allocate."""
    path = Path(path)
    check_pth_archive(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # refused globals, truncated zip, not a pickle at all
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AdapterError(f"{path}: cannot be read as a weights-only checkpoint ({first_line}). Pickle files are "
                           "never unpickled into arbitrary objects; use a .safetensors adapter, or the official "
                           "upsampler_only.pth.") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise AdapterError(f"{path}: a pickle checkpoint that is not the official Self-Cascade layout (a dict with "
                           "'state_dict'); use a .safetensors adapter made by this node pack.")
    return official_adapter(state, str(path))


def load_adapter(path: Path | str) -> UpsamplerAdapter:
    """An adapter from a .safetensors file of this pack, or from the official upsampler_only.pth."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"{path}: no such adapter file; put adapters in models/upsampler_adapters.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return read_official_pth(path)
    return _load_safetensors(path)


def write_adapter(path: Path | str, adapter: UpsamplerAdapter) -> None:
    """Write ``adapter``'s weights and metadata to ``path`` as they are (checked to read back)."""
    metadata = spec_to_metadata(adapter.spec)
    spec_from_metadata(metadata, str(path))  # refuse to write what we could not read back
    state = {key: value.detach().to("cpu").contiguous() for key, value in adapter.module.state_dict().items()}
    _module_with(adapter.spec, state, str(path))
    safetensors.torch.save_file(state, str(path), metadata=metadata)


def save_adapter(path: Path | str, adapter: UpsamplerAdapter, overwrite: bool = False) -> None:
    """Write ``adapter`` to a new ``.safetensors`` file, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise AdapterError(f"{path}: adapters are saved as .safetensors; choose a name ending in .safetensors.")
    if path.exists() and not overwrite:
        raise AdapterError(f"{path}: exists; choose another name or pass overwrite=True.")
    if not path.parent.is_dir():
        raise AdapterError(f"{path}: the folder {path.parent} does not exist; create it first.")
    with replaced_atomically(path) as temporary:
        write_adapter(temporary, adapter)


def convert_official_adapter(source: Path | str, destination: Path | str, overwrite: bool = False) -> UpsamplerAdapter:
    """Official upsampler_only.pth -> our safetensors file; returns the adapter."""
    adapter = read_official_pth(source)
    save_adapter(destination, adapter, overwrite)
    return adapter

