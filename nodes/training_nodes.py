"""Train Upsampler Adapter: the cheap tuning of the paper (Algorithm 1) inside ComfyUI."""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

import torch

import comfy.model_management
import comfy.utils
import folder_paths

from ..adapters.dataset import IMAGE_SUFFIXES, TrainingCache, TrainingInputError, image_paths
from ..adapters.modules import ALL_VARIANTS, DIT_VARIANTS, INJECTIONS, LITE, SKIP
from ..adapters.training import (StepReport, Trainer, TrainingSettings, fresh_adapter, model_fingerprint, prepare_data,
                                 refuse_existing)
from ..sampling import limits
from .adapter_nodes import ADAPTER_FOLDER
from .api import CATEGORY, UpsamplerAdapter, io, ui

CACHE_FOLDER = "selfcascade_training_cache"  # under ComfyUI's temp folder: reused within a server session
TRAINING_FOLDER = "upsampler_training"  # extra_model_paths.yaml key of folders training may read besides input/
MAX_FOLDER_CHARS = 255


def adapter_output_path(save_name: str) -> Path:
    """``models/upsampler_adapters/<save_name>.safetensors`` for a plain file name (``limits.FILE_NAME_RULE``)."""
    name = save_name[:-len(".safetensors")] if save_name.endswith(".safetensors") else save_name
    try:
        limits.check_file_name(name, "save name")
    except limits.InputLimitError as error:
        raise TrainingInputError(str(error)) from None
    return Path(folder_paths.get_folder_paths(ADAPTER_FOLDER)[0]) / f"{name}.safetensors"


def training_roots() -> list[Path]:
    """Where training may read images: ComfyUI's input folder, then the ``upsampler_training`` folders
    of ``extra_model_paths.yaml``."""
    configured = folder_paths.folder_names_and_paths.get(TRAINING_FOLDER, ([], set()))[0]
    return [Path(folder_paths.get_input_directory()), *map(Path, configured)]


def image_folder_path(image_folder: str) -> Path:
    """The first folder named ``image_folder`` inside a training root that holds an image.

    A client names a folder; it never learns about others: a name that is missing, empty, or that
    leads out of its root (``..``, an absolute path, a symbolic link) gets the same answer, which
    lists nothing.
    """
    name = image_folder.strip()
    relative = PurePosixPath(name.replace("\\", "/"))
    if (not name or len(name) > MAX_FOLDER_CHARS or not name.isprintable() or relative.is_absolute()
            or PureWindowsPath(name).drive or ".." in relative.parts):
        raise TrainingInputError(f"image folder {ascii(name[:MAX_FOLDER_CHARS])} must name a folder inside ComfyUI's input "
                                 f"folder (or an '{TRAINING_FOLDER}' folder of extra_model_paths.yaml), e.g. "
                                 f"'upsampler_training': at most {MAX_FOLDER_CHARS} printable characters, no absolute "
                                 "path, no '..'.")
    for root in training_roots():
        real_root = root.resolve()
        folder = (real_root / relative).resolve()
        if folder.is_relative_to(real_root) and folder.is_dir() and any(image_paths(folder)):
            return folder
    raise TrainingInputError(f"image folder '{name}' holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images in "
                             f"ComfyUI's input folder or an '{TRAINING_FOLDER}' folder of extra_model_paths.yaml; "
                             f"put your training images in input/{name} (subfolders are searched too).")


class TrainUpsamplerAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeTrainUpsamplerAdapter",
            display_name="Train Upsampler Adapter",
            category=CATEGORY,
            description=("Trains learned upsamplers for this model (Self-Cascade's cheap tuning): the model stays "
                         "frozen; for random crops of your images at the target size, the adapter learns to carry "
                         "the half-size pivot's features into the denoising of t <= K. Saves the adapter to "
                         "models/upsampler_adapters. For captions per image, resuming and multi-GPU use "
                         "scripts/train_adapter.py."),
            inputs=[
                io.Model.Input("model", tooltip=("The frozen base model: an SD1.x, SD2.x or SDXL UNet, or a Flux-style "
                                                 "transformer (Flux.1, Flux.2, the flow demo model) with variant "
                                                 "dit-lite.")),
                io.Vae.Input("vae", tooltip="The model's VAE: encodes the crops and their half-size pivots once."),
                io.Conditioning.Input("conditioning", tooltip="One prompt for every image (an empty prompt is fine)."),
                io.String.Input("image_folder", default="upsampler_training",
                                tooltip=("Folder of png/jpg/webp images at or above the resolution, searched "
                                         "recursively: a folder inside ComfyUI's input folder, or inside a folder "
                                         f"listed under '{TRAINING_FOLDER}:' in extra_model_paths.yaml.")),
                io.Int.Input("resolution", default=1024, min=64, max=8192, step=16,
                             tooltip="Training crop side in pixels: the target size (the pivot is half of it)."),
                io.Int.Input("steps", default=1000, min=1, max=1000000,
                             tooltip="Optimizer steps (paper: 4k for 4x, 10k for 16x)."),
                io.Combo.Input("variant", options=list(ALL_VARIANTS), default=LITE,
                               tooltip=("UNets: lite, the paper's small upsamplers; official-sdxl, the released SDXL "
                                        "layout. Flux-style transformers: dit-lite, the lite design on the image "
                                        "tokens after the first blocks.")),
                io.Combo.Input("injection", options=list(INJECTIONS), default=SKIP,
                               tooltip=("UNet variants: skip, added to the skip features (paper); backbone, to the "
                                        "encoder path (official code). dit-lite always adds to the image tokens after "
                                        "its blocks and ignores this.")),
                io.Float.Input("k", **limits.K.schema(), step=0.01,
                               tooltip="K: trains t in (0, K] of the time range, the part of each stage after the "
                                       "pivot re-noise (paper 0.7)."),
                io.Float.Input("learning_rate", default=5e-5, min=1e-7, max=1.0, step=1e-7,
                               tooltip="AdamW learning rate (weight decay 0.01)."),
                io.Int.Input("batch_size", default=1, min=1, max=256, tooltip="Crops per step."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seeds the crops, the adapter's initial weights, the sample order, noise and t."),
                io.String.Input("save_name", default="upsampler_adapter",
                                tooltip=(f"File name in models/upsampler_adapters (.safetensors is added): "
                                         f"{limits.FILE_NAME_RULE}.")),
                io.Boolean.Input("overwrite", default=False, tooltip="Replace an existing adapter of that name."),
            ],
            outputs=[UpsamplerAdapter.Output(tooltip="The trained adapter (also saved to models/upsampler_adapters).")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, vae, conditioning, image_folder: str, resolution: int, steps: int, variant: str,
                injection: str, k: float, learning_rate: float, batch_size: int, seed: int,
                save_name: str, overwrite: bool) -> io.NodeOutput:
        output = adapter_output_path(save_name)
        refuse_existing(output, overwrite)
        settings = TrainingSettings(resolution, resolution, steps, k=k, learning_rate=learning_rate,
                                    batch_size=batch_size, seed=seed)
        settings.check()
        images = image_folder_path(image_folder)
        cache = TrainingCache(Path(folder_paths.get_temp_directory()) / CACHE_FOLDER)
        with torch.inference_mode(False):  # the host runs nodes in inference mode; training needs autograd
            # a transformer has no skip features: dit-lite takes its own injection whatever the widget says
            adapter = fresh_adapter(model, variant, None if variant in DIT_VARIANTS else injection, settings)
            data = prepare_data(images, vae, settings, cache,
                                model_fingerprint(vae.first_stage_model), conditioning=conditioning)
            trainer = Trainer(model, adapter, data, settings, model_fingerprint(model.model))
            before = trainer.fixed_batch_loss()
            bar = comfy.utils.ProgressBar(steps)

            def on_step(report: StepReport) -> None:
                bar.update_absolute(report.step, report.total)
                comfy.model_management.throw_exception_if_processing_interrupted()

            trainer.run(on_step)
            after = trainer.fixed_batch_loss()
            trainer.save(output, overwrite=overwrite, with_state=False)
        adapter = trainer.trained_adapter()
        adapter.module.requires_grad_(False).eval()
        report = (f"saved {output.name}: {steps} steps on {len(data.examples)} images, last loss {trainer.loss:.4f}\n"
                  f"fixed-batch loss {before:.4f} -> {after:.4f}\n{adapter.spec.summary()}")
        return io.NodeOutput(adapter, ui=ui.PreviewText(report))


NODES = [TrainUpsamplerAdapter]
