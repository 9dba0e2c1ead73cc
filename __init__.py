"""Self-Cascade for ComfyUI: higher-resolution images and videos by re-using the model as its own cascade.

ComfyUI imports this file: it registers the ``upsampler_adapters`` model folder (next to any path an
``extra_model_paths.yaml`` already gave it), the web extension with its ``/selfcascade/plan`` and
``/selfcascade/family`` routes, and the V3 nodes.
"""
from .nodes import comfy_entrypoint
from .nodes.adapter_nodes import register_adapter_folder
from .nodes.routes import register_routes

register_adapter_folder()

WEB_DIRECTORY = "./web"
register_routes()

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
