"""Load Upsampler Adapter and Apply Upsampler Adapter: the learned upsamplers for hand-built cascades."""
from __future__ import annotations

import os

import folder_paths

from ..adapters.fileformat import AdapterError, load_adapter
from ..adapters.injection import apply_upsampler_adapter, check_host_supports
from ..adapters.training import is_training_byproduct
from .api import CATEGORY, UpsamplerAdapter, io, ui

ADAPTER_FOLDER = "upsampler_adapters"
ADAPTER_EXTENSIONS = {".safetensors", ".pth"}  # ours, and the official upsampler_only.pth


def register_adapter_folder() -> None:
    """``models/upsampler_adapters`` (after any path ``extra_model_paths.yaml`` gave the folder), adapter files only."""
    folder_paths.add_model_folder_path(ADAPTER_FOLDER, os.path.join(folder_paths.models_dir, ADAPTER_FOLDER))
    paths, _ = folder_paths.folder_names_and_paths[ADAPTER_FOLDER]
    folder_paths.folder_names_and_paths[ADAPTER_FOLDER] = (paths, set(ADAPTER_EXTENSIONS))


def adapter_names() -> list[str]:
    """The files Load Upsampler Adapter offers: adapters, not the resume files training writes beside them."""
    return [name for name in folder_paths.get_filename_list(ADAPTER_FOLDER) if not is_training_byproduct(name)]


def _adapter_path(adapter_name: str) -> str:
    path = folder_paths.get_full_path(ADAPTER_FOLDER, adapter_name)
    if path is None:
        raise AdapterError(f"adapter '{adapter_name}' is not in models/{ADAPTER_FOLDER}; copy it there and refresh.")
    return path


class LoadUpsamplerAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeLoadUpsamplerAdapter",
            display_name="Load Upsampler Adapter",
            category=CATEGORY,
            description=("Loads learned Self-Cascade upsamplers (.safetensors made by this pack: lite or official-sdxl "
                         "for SD1.x/SD2.x/SDXL UNets, dit-lite for Flux-style transformers; or the official SDXL "
                         "upsampler_only.pth) from models/upsampler_adapters and shows what they were made for."),
            inputs=[io.Combo.Input("adapter_name", options=adapter_names(),
                                   tooltip=("Adapter file in models/upsampler_adapters (training's resume files, "
                                            ".state.safetensors sidecars and -stepNNNNNN checkpoints, are not listed)."))],
            outputs=[UpsamplerAdapter.Output(tooltip="The adapter, for Apply Upsampler Adapter or Self-Cascade KSampler.")],
        )

    @classmethod
    def fingerprint_inputs(cls, adapter_name: str) -> str:
        """Reload when the file changes on disk (same name, new weights)."""
        stat = os.stat(_adapter_path(adapter_name))
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    @classmethod
    def execute(cls, adapter_name: str) -> io.NodeOutput:
        adapter = load_adapter(_adapter_path(adapter_name))
        check_host_supports(adapter)  # a host that cannot inject this variant: say so here, not at the first stage
        text = f"{adapter.spec.summary()}\nparameters: {adapter.parameter_count():,}"
        return io.NodeOutput(adapter, ui=ui.PreviewText(text))


class ApplyUpsamplerAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeApplyUpsamplerAdapter",
            display_name="Apply Upsampler Adapter",
            category=CATEGORY,
            description=("Patches a copy of the model so that, in one high-resolution stage, the model also reads the "
                         "clean pivot: its features (a UNet's encoder levels, or a Flux-style transformer's image tokens "
                         "after its first blocks) are upsampled by the adapter and added to the stage's features. "
                         "Sample the upscaled pivot with this model (SamplerCustom + Pivot Reschedule)."),
            inputs=[
                io.Model.Input("model", tooltip=("The model of this high-resolution stage: an SD1.x, SD2.x or SDXL UNet "
                                                 "for a lite or official-sdxl adapter, a Flux-style transformer (Flux.1, "
                                                 "Flux.2, the flow demo model) for a dit-lite adapter.")),
                UpsamplerAdapter.Input("upsampler_adapter", tooltip="From Load Upsampler Adapter; must match the model."),
                io.Latent.Input("pivot", tooltip=("The previous stage's clean latent, before upscaling (half this "
                                                  "stage's size; other sizes are resized).")),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.01,
                               tooltip="Multiplier of the adapter's features (1.0 as trained, 0 turns it off)."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Where in the schedule the adapter starts acting (0 = first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Where it stops (1 = last step; the official SDXL code stops at t = 100, 0.9)."),
            ],
            outputs=[io.Model.Output(tooltip="A patched copy of the model; the input model is unchanged.")],
        )

    @classmethod
    def execute(cls, model, upsampler_adapter, pivot, strength: float, start_percent: float,
                end_percent: float) -> io.NodeOutput:
        return io.NodeOutput(apply_upsampler_adapter(model, upsampler_adapter, pivot["samples"], strength,
                                                     start_percent, end_percent))


NODES = [LoadUpsamplerAdapter, ApplyUpsamplerAdapter]
