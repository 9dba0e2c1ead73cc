"""The one place that imports ComfyUI's node API: pinned to a numbered version when offered."""
try:
    from comfy_api.v0_0_2 import ComfyExtension, io, ui
except ImportError:  # hosts that only ship the unversioned module
    from comfy_api.latest import ComfyExtension, io, ui

CATEGORY = "sampling/self_cascade"
# the adapter object travels between nodes under this socket type
UpsamplerAdapter = io.Custom("UPSAMPLER_ADAPTER")

__all__ = ["ComfyExtension", "io", "ui", "CATEGORY", "UpsamplerAdapter"]
