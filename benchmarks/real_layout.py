"""Random-weight checkpoints in the exact key layout and shapes of SD1.5, SDXL base and the official SDXL upsamplers.

Why: no real checkpoint can be downloaded here, but users load full checkpoints through
CheckpointLoaderSimple, and costs depend on real widths. These files are what ComfyUI's own loader
reads and detects as SD1.5 / SDXL: the shapes come from the host's classes (``comfy.supported_models``
configs, their ``clip_target()`` text encoders, the SD ``AutoencoderKL``) built on the meta device,
and the keys from the host's own saving path (``BaseModel.state_dict_for_saving``, see ``checkpoint_state_dict``: ``model.diffusion_model.*``,
``cond_stage_model.*`` / ``conditioner.embedders.*``, ``first_stage_model.*``). The official
``upsampler_only.pth`` is our ``official-sdxl`` module's state dict under the released key names.

Every floating tensor is drawn ``normal(0, 0.02)`` from a generator seeded by (seed, key), so a file
does not depend on key order and the same seed gives the same bytes; integer buffers (CLIP's
``position_ids``) keep their values. Stored as fp16, streamed to disk one tensor at a time (SDXL is
6.9 GB), written atomically into a cache folder keyed by format version and seed:
``$SELFCASCADE_REAL_LAYOUT_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/selfcascade/real-layout``
(outside the checkout, so a fresh clone on the same machine reuses it). They draw noise: good for
loading, shapes and costs, never for pictures.

    python benchmarks/real_layout.py [--families sd15,sdxl] [--adapter] [--seed 0]   prints the paths
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from pathlib import Path
from typing import Mapping

import torch

FORMAT_VERSION = 1  # bump when the bytes of a file for a given seed change
FAMILIES = ("sd15", "sdxl")
STD = 0.02
CHECKPOINT_NAMES = {"sd15": "sd15_real_layout_random.safetensors", "sdxl": "sdxl_base_real_layout_random.safetensors"}
ADAPTER_NAME = "upsampler_only.pth"  # the released file's name, which the shipped workflow loads
CONFIG_CLASS = {"sd15": "SD15", "sdxl": "SDXL"}  # comfy.supported_models class the host must detect
CACHE_ENV = "SELFCASCADE_REAL_LAYOUT_CACHE"
_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}


def cache_root() -> Path:
    """The cache folder: the environment variable, else the user's cache (survives fresh clones and CI runs)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfcascade" / "real-layout"


def model_folders(seed: int = 0) -> dict[str, Path]:
    """ComfyUI model folders holding this seed's files (``checkpoints``, ``upsampler_adapters``)."""
    base = cache_root() / f"v{FORMAT_VERSION}-seed{seed}"
    return {"checkpoints": base / "checkpoints", "upsampler_adapters": base / "upsampler_adapters"}


def checkpoint_layout(family: str) -> dict[str, torch.Tensor]:
    """Every key of a full ``family`` checkpoint with a meta tensor of its shape (integer buffers real)."""
    import comfy.supported_models
    from comfy.ldm.models.autoencoder import AutoencoderKL

    from .models import FULL_UNET, FULL_VAE

    config = getattr(comfy.supported_models, CONFIG_CLASS[family])(dict(FULL_UNET[family]))
    config.set_inference_dtype(torch.float16, None)
    meta = torch.device("meta")
    model = config.get_model({}, device=meta)
    target = config.clip_target()
    text_encoder = target.clip(**{**target.params, "dtype": torch.float16, "device": meta, "model_options": {}})
    with meta:
        vae = AutoencoderKL(**FULL_VAE["params"])
    return checkpoint_state_dict(model, text_encoder.state_dict(), vae.state_dict())


def checkpoint_state_dict(model, clip_state_dict: dict | None = None,
                          vae_state_dict: dict | None = None) -> dict[str, torch.Tensor]:
    """A ``comfy.model_base.BaseModel``'s checkpoint keys through the host's own ``state_dict_for_saving``.

    Why: ComfyUI up to 0.3.x reads the UNet's weights itself (``state_dict_for_saving(clip, vae)``);
    newer hosts (0.33) take them as a first ``unet_state_dict`` argument, which their ``ModelPatcher``
    fills. A bare model (meta tensors, no patcher) passes its own ``diffusion_model.state_dict()``.
    """
    import inspect

    if "unet_state_dict" in inspect.signature(model.state_dict_for_saving).parameters:
        return model.state_dict_for_saving(model.diffusion_model.state_dict(), clip_state_dict, vae_state_dict)
    return model.state_dict_for_saving(clip_state_dict, vae_state_dict)


def official_adapter_layout() -> dict[str, torch.Tensor]:
    """The official ``upsampler_only.pth`` state dict at SDXL widths (meta tensors, released key names)."""
    from ..adapters.fileformat import to_official_keys
    from ..adapters.modules import OFFICIAL_SDXL, AdapterSpec, build_module, unet_layout
    from .models import FULL_UNET

    layout = unet_layout(FULL_UNET["sdxl"])
    spec = AdapterSpec(OFFICIAL_SDXL, "sdxl", layout.channels, layout.emb_dim, "backbone", layout.points)
    with torch.device("meta"):
        return to_official_keys(build_module(spec).state_dict())


def random_tensor(key: str, like: torch.Tensor, seed: int) -> torch.Tensor:
    """``normal(0, 0.02)`` fp16 of ``like``'s shape from a generator seeded by (seed, key); non-float values kept."""
    if not like.is_floating_point():
        return like.cpu()
    if like.device.type != "meta":  # a value the host sets on construction (CLIP-G's logit_scale)
        return like.to(torch.float16)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return (torch.randn(like.shape, generator=generator) * STD).to(torch.float16)


def _stored_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float16 if tensor.is_floating_point() else tensor.dtype


def _header(layout: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The safetensors header for ``layout`` stored as ``_stored_dtype``, keys sorted, padded to 8 bytes."""
    entries, offset = {"__metadata__": dict(metadata)}, 0
    for key in sorted(layout):
        dtype = _stored_dtype(layout[key])
        size = layout[key].numel() * dtype.itemsize
        entries[key] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(layout[key].shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    return text + b" " * (-len(text) % 8)


def expected_size(layout: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> int:
    return 8 + len(_header(layout, metadata)) + sum(t.numel() * _stored_dtype(t).itemsize for t in layout.values())


def _write_atomically(path: Path, write) -> None:
    """``write(stream)`` into ``path`` through the pack's one atomic writer: a reader never sees half a file."""
    from ..adapters.fileformat import replaced_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as temporary:
        with open(temporary, "wb") as stream:
            write(stream)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache from other users


def write_random_safetensors(path: Path, layout: Mapping[str, torch.Tensor], seed: int,
                             metadata: Mapping[str, str]) -> None:
    """A safetensors file of ``layout`` filled by ``random_tensor``, one tensor in memory at a time."""
    header = _header(layout, metadata)

    def write(stream) -> None:
        stream.write(struct.pack("<Q", len(header)) + header)
        for key in sorted(layout):
            stream.write(random_tensor(key, layout[key], seed).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    _write_atomically(path, write)


def _metadata(family: str, seed: int) -> dict[str, str]:
    return {"selfcascade.real_layout": json.dumps({"family": family, "seed": seed, "format_version": FORMAT_VERSION,
                                                   "weights": f"random normal(0, {STD}), not a trained model"})}


def ensure_checkpoint(family: str, seed: int = 0) -> Path:
    """The cached real-layout ``family`` checkpoint, written first if missing or of the wrong size."""
    path = model_folders(seed)["checkpoints"] / CHECKPOINT_NAMES[family]
    layout, metadata = checkpoint_layout(family), _metadata(family, seed)
    if not path.is_file() or path.stat().st_size != expected_size(layout, metadata):
        print(f"[real-layout] writing {path} (random weights, seed {seed})", flush=True)
        write_random_safetensors(path, layout, seed, metadata)
    return path


def ensure_official_adapter(seed: int = 0) -> Path:
    """The cached full-width official ``upsampler_only.pth`` (every conv non-zero, unlike a fresh official module)."""
    path = model_folders(seed)["upsampler_adapters"] / ADAPTER_NAME
    if not path.is_file():
        print(f"[real-layout] writing {path} (random weights, seed {seed})", flush=True)
        state = {key: random_tensor(key, like, seed) for key, like in official_adapter_layout().items()}
        _write_atomically(path, lambda stream: torch.save({"state_dict": state}, stream))
    return path


def tensor_digest(path: Path, keys: list[str]) -> str:
    """sha256 over a few tensors of a safetensors file (cheap determinism check)."""
    import safetensors

    digest = hashlib.sha256()
    with safetensors.safe_open(str(path), framework="pt") as handle:
        for key in keys:
            digest.update(key.encode() + handle.get_tensor(key).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of sd15, sdxl")
    parser.add_argument("--adapter", action="store_true", help="also the official SDXL upsampler_only.pth")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for family in filter(None, args.families.split(",")):
        print(ensure_checkpoint(family, args.seed))
    if args.adapter:
        print(ensure_official_adapter(args.seed))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from _bootstrap import bootstrap

    bootstrap()
    from selfcascade.benchmarks.real_layout import main as package_main  # relative imports need the package

    sys.exit(package_main())
