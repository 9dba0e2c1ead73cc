"""Train Upsampler Adapter: the cheap tuning of the paper (Algorithm 1) inside ComfyUI."""
from __future__ import annotations

import os
from pathlib import Path

import torch

import comfy.model_management
import comfy.utils
import folder_paths

from ..adapters.dataset import TrainingCache, TrainingInputError
from ..adapters.modules import INJECTIONS, LITE, SKIP, VARIANTS
from ..adapters.training import (StepReport, Trainer, TrainingSettings, fresh_adapter, model_fingerprint, prepare_data,
                                 refuse_existing)
from .adapter_nodes import ADAPTER_FOLDER
from .api import CATEGORY, UpsamplerAdapter, io, ui

CACHE_FOLDER = "selfcascade_training_cache"  # under ComfyUI's temp folder: reused within a server session


def adapter_output_path(save_name: str) -> Path:
    """``models/upsampler_adapters/<save_name>.safetensors``; refuses names that leave the folder."""
    name = save_name.strip()
    name = name[:-len(".safetensors")] if name.endswith(".safetensors") else name
    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", os.sep)):
        raise TrainingInputError(f"save name '{save_name}' must be a plain file name (no folders, not starting "
                                 "with '.'), e.g. 'sd15-2x'.")
    return Path(folder_paths.get_folder_paths(ADAPTER_FOLDER)[0]) / f"{name}.safetensors"


def image_folder_path(image_folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's input folder."""
    path = Path(image_folder.strip()).expanduser()
    return path if path.is_absolute() else Path(folder_paths.get_input_directory()) / path


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
                io.Model.Input("model", tooltip="The frozen base model (SD1.x, SD2.x or SDXL UNet)."),
                io.Vae.Input("vae", tooltip="The model's VAE: encodes the crops and their half-size pivots once."),
                io.Conditioning.Input("conditioning", tooltip="One prompt for every image (an empty prompt is fine)."),
                io.String.Input("image_folder", default="upsampler_training",
                                tooltip=("Folder of png/jpg/webp images at or above the resolution, searched "
                                         "recursively; absolute, or relative to ComfyUI's input folder.")),
                io.Int.Input("resolution", default=1024, min=64, max=8192, step=16,
                             tooltip="Training crop side in pixels: the target size (the pivot is half of it)."),
                io.Int.Input("steps", default=1000, min=1, max=1000000,
                             tooltip="Optimizer steps (paper: 4k for 4x, 10k for 16x)."),
                io.Combo.Input("variant", options=list(VARIANTS), default=LITE,
                               tooltip="lite: the paper's small upsamplers; official-sdxl: the released SDXL layout."),
                io.Combo.Input("injection", options=list(INJECTIONS), default=SKIP,
                               tooltip="skip: added to the skip features (paper); backbone: to the encoder path "
                                       "(official code)."),
                io.Float.Input("k", default=0.7, min=0.01, max=1.0, step=0.01,
                               tooltip="K: trains t in (0, K] of the time range, the part of each stage after the "
                                       "pivot re-noise (paper 0.7)."),
                io.Float.Input("learning_rate", default=5e-5, min=1e-7, max=1.0, step=1e-7,
                               tooltip="AdamW learning rate (weight decay 0.01)."),
                io.Int.Input("batch_size", default=1, min=1, max=256, tooltip="Crops per step."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seeds the crops, the adapter's initial weights, the sample order, noise and t."),
                io.String.Input("save_name", default="upsampler_adapter",
                                tooltip="File name in models/upsampler_adapters (.safetensors is added)."),
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
        cache = TrainingCache(Path(folder_paths.get_temp_directory()) / CACHE_FOLDER)
        with torch.inference_mode(False):  # the host runs nodes in inference mode; training needs autograd
            adapter = fresh_adapter(model, variant, injection, settings)
            data = prepare_data(image_folder_path(image_folder), vae, settings, cache,
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
