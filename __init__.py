"""Self-Cascade for ComfyUI: higher-resolution images and videos by re-using the model as its own cascade.

ComfyUI imports this file: it registers the ``upsampler_adapters`` model folder (next to any path an
``extra_model_paths.yaml`` already gave it), the web extension with its ``/selfcascade/plan`` route,
and the V3 nodes.
"""
import os

import folder_paths

from .nodes import comfy_entrypoint
from .nodes.routes import register_routes

ADAPTER_FOLDER = "upsampler_adapters"
folder_paths.add_model_folder_path(ADAPTER_FOLDER, os.path.join(folder_paths.models_dir, ADAPTER_FOLDER))

WEB_DIRECTORY = "./web"
register_routes()

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
