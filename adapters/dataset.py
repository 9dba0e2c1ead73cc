"""Training data for the upsampler adapter: a folder of images, one fixed crop each, encoded once.

Algorithm 1 of the paper needs, per example, the target latent z0 = E(x0) and the pivot
E(downsample(x0)), aligned pixel for pixel. Encoding is the expensive part, so each crop is encoded
once and cached on disk (safetensors) under a key hashed from the file's fingerprint, the crop and
the encoder; later epochs, runs and resumed runs read the cache. The crop of each image is drawn
once from the seed (keyed by its path), so every epoch shows an image at the same crop: enough for
the few thousand steps this tuning takes, and it is what makes the cache possible.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import safetensors.torch
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

import comfy.utils

from .fileformat import replaced_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CACHE_FORMAT = "selfcascade-training-cache/1"
_FINGERPRINT_CHUNK = 1 << 20  # files up to 2 MiB are hashed whole, larger ones by their first and last MiB
_EXIF_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF rotations by 90 degrees: width and height trade places
_LISTED_FILES = 5

# caption -> ComfyUI CONDITIONING [[context, extras]]
TextEncoder = Callable[[str], list]


class TrainingInputError(ValueError):
    """Training input that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    relative: str  # path inside the image folder, POSIX style: keys the crop, names the file in errors
    width: int
    height: int
    caption: str


@dataclass(frozen=True)
class Example:
    """One cached training example; the caption's conditioning is cached separately (shared by equal captions)."""

    latent_file: Path
    caption: str


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's size and bytes; of large files only the first and last MiB (cheap, and
    enough to tell checkpoints or images apart; an edit only in the middle of a large file is missed)."""
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        if size <= 2 * _FINGERPRINT_CHUNK:
            digest.update(handle.read())
        else:
            digest.update(handle.read(_FINGERPRINT_CHUNK))
            handle.seek(size - _FINGERPRINT_CHUNK)
            digest.update(handle.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()


def derive_seed(seed: int, *keys) -> int:
    """A 63-bit seed from ``seed`` and ``keys``: independent streams without shared generator state."""
    text = json.dumps([seed, *keys], default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED_FILES])
    return shown + (f" and {len(items) - _LISTED_FILES} more" if len(items) > _LISTED_FILES else "")


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    if image.getexif().get(_EXIF_ORIENTATION) in _SWAPPED_ORIENTATIONS:
        return height, width
    return width, height


def image_paths(folder: Path) -> Iterator[Path]:
    """The png/jpg/webp files under ``folder``, recursively, skipping hidden folders and files and
    symbolic links that lead out of it (subfolder links are never followed)."""
    real_folder = folder.resolve()
    for path in folder.rglob("*"):
        if (path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in path.relative_to(folder).parts)
                and path.is_file() and path.resolve().is_relative_to(real_folder)):
            yield path


def no_images_message(folder: str) -> str:
    """The one answer for a folder that is missing, is not a folder, or holds no image: it tells nobody which."""
    return (f"image folder '{folder}' holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images; put training images "
            "in it (subfolders are searched too).")


def scan_image_folder(folder: str | os.PathLike, width: int, height: int) -> list[ImageRecord]:
    """Every png/jpg/webp under ``folder`` (``image_paths``), sorted, with its caption.

    Refuses a folder that is missing or holds no image (one message, listing nothing), and, naming
    them, images PIL cannot open and images smaller than the ``width`` x ``height`` crop.
    """
    root = Path(folder).expanduser()
    paths = sorted(image_paths(root)) if root.is_dir() else []
    if not paths:
        raise TrainingInputError(no_images_message(str(folder)))
    records, unreadable, too_small = [], [], []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        try:
            with Image.open(path) as image:
                image_width, image_height = _oriented_size(image)
        except (UnidentifiedImageError, OSError) as error:
            unreadable.append(f"{relative} ({error.__class__.__name__})")
            continue
        if image_width < width or image_height < height:
            too_small.append(f"{relative} ({image_width}x{image_height})")
            continue
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else ""
        records.append(ImageRecord(path, relative, image_width, image_height, caption))
    if unreadable:
        raise TrainingInputError(f"{len(unreadable)} image(s) in '{root}' cannot be read: {_listing(unreadable)}; "
                                 "re-save or remove them.")
    if too_small:
        raise TrainingInputError(f"{len(too_small)} image(s) in '{root}' are smaller than the {width}x{height} training "
                                 f"crop: {_listing(too_small)}; remove them or train at a lower resolution "
                                 "(the paper uses images larger than the target).")
    return records


def crop_origin(seed: int, record: ImageRecord, width: int, height: int) -> tuple[int, int]:
    """Left and top of the image's one training crop, drawn from ``seed`` and the image's path."""
    rng = random.Random(derive_seed(seed, "crop", record.relative))
    return rng.randint(0, record.width - width), rng.randint(0, record.height - height)


def load_crop(record: ImageRecord, left: int, top: int, width: int, height: int) -> torch.Tensor:
    """The crop as a ComfyUI IMAGE: float (1, H, W, 3) in [0, 1], EXIF rotation applied."""
    try:
        with Image.open(record.path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            crop = image.crop((left, top, left + width, top + height))
    except OSError as error:
        raise TrainingInputError(f"image '{record.path}' cannot be decoded ({error}); re-save or remove it.") from error
    pixels = torch.frombuffer(bytearray(crop.tobytes()), dtype=torch.uint8).reshape(height, width, 3)
    return (pixels.float() / 255.0).unsqueeze(0)


def downsample(image: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter (area) downsampling of an IMAGE by ``factor`` per side: the paper's Downsample(x0)."""
    _, height, width, _ = image.shape
    resized = comfy.utils.common_upscale(image.movedim(-1, 1), width // factor, height // factor, "area", "disabled")
    return resized.movedim(1, -1)


def write_cache_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """One cache entry, written atomically: a reader (another process of the run) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as temporary:
        safetensors.torch.save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, temporary, metadata)


class TrainingCache:
    """Encoded crops (``latents/``) and encoded captions (``text/``), one safetensors file per key."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser()

    def latent_file(self, record: ImageRecord, origin: tuple[int, int], width: int, height: int, vae_id: str) -> Path:
        key = hashlib.sha256(json.dumps([CACHE_FORMAT, file_fingerprint(record.path), origin, width, height, vae_id])
                             .encode()).hexdigest()
        return self.folder / "latents" / f"{key}.safetensors"

    def text_file(self, caption: str, text_id: str) -> Path:
        key = hashlib.sha256(json.dumps([CACHE_FORMAT, caption, text_id]).encode()).hexdigest()
        return self.folder / "text" / f"{key}.safetensors"


def encode_example(vae, record: ImageRecord, origin: tuple[int, int], width: int, height: int, target: Path) -> None:
    """Encode the crop and its pivot with the VAE (VAE space, as VAE Encode gives) into ``target``."""
    pixels = load_crop(record, *origin, width, height)
    with torch.no_grad():
        latent = vae.encode(pixels).float()
        pivot = vae.encode(downsample(pixels)).float()
    write_cache_file(target, {"latent": latent, "pivot": pivot},
                             {"format": CACHE_FORMAT, "source": record.relative, "crop": json.dumps([*origin, width, height])})


def load_example(latent_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(target latent, pivot latent), both (1, C, h, w) in VAE space."""
    tensors = safetensors.torch.load_file(latent_file)
    return tensors["latent"], tensors["pivot"]


def encode_caption(encode_text: TextEncoder, caption: str, target: Path) -> None:
    """Cache the caption's conditioning: its context and tensor extras (e.g. pooled_output)."""
    with torch.no_grad():
        conditioning = encode_text(caption)
    context, extras = conditioning[0]
    tensors = {"context": context}
    tensors.update({f"extra.{name}": value for name, value in extras.items() if isinstance(value, torch.Tensor)})
    scalars = {name: value for name, value in extras.items() if isinstance(value, (int, float, str, bool))}
    write_cache_file(target, tensors, {"format": CACHE_FORMAT, "scalars": json.dumps(scalars)})


def load_caption(text_file: Path) -> list:
    """The cached conditioning, as ComfyUI CONDITIONING."""
    with safetensors.safe_open(text_file, "pt") as handle:
        scalars = json.loads(handle.metadata().get("scalars", "{}"))
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    extras = {name[len("extra."):]: value for name, value in tensors.items() if name.startswith("extra.")}
    return [[tensors["context"], {**scalars, **extras}]]


def examples_for(records: list[ImageRecord], cache: TrainingCache, seed: int, width: int, height: int,
                 vae_id: str) -> list[Example]:
    """Where each record's encoded crop lives (encoded or not yet)."""
    return [Example(cache.latent_file(record, crop_origin(seed, record, width, height), width, height, vae_id),
                    record.caption) for record in records]


def encode_missing(records: list[ImageRecord], examples: list[Example], vae, seed: int, width: int, height: int,
                   progress: Optional[Callable[[int, int], None]] = None) -> None:
    """Encode the examples whose cache file is missing (``progress(done, total)`` after each)."""
    missing = [(record, example) for record, example in zip(records, examples) if not example.latent_file.exists()]
    for done, (record, example) in enumerate(missing, start=1):
        encode_example(vae, record, crop_origin(seed, record, width, height), width, height, example.latent_file)
        if progress is not None:
            progress(done, len(missing))
