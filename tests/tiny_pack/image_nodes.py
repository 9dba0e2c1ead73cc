"""Test-only image sources for Self-Cascade Upscale: a seeded image batch and the tiny Wan 2.1 VAE.

- ``TinyImage``: an IMAGE batch (frames, height, width, channels) of smooth seeded colour fields,
  any channel count (4 = with alpha, 1 = wrong), for equivalence, tiling and bad-input tests.
- ``TinyVideoVAE``: ``models.build_video_vae``, the tiny Wan model's VAE (video latents).
- ``TinyFluxVAE``: ``models.build_flux_vae``, a 16-channel image VAE for the tiny flux model.
"""
import torch

from comfy_api.latest import io

from .models import build_flux_vae, build_video_vae

CATEGORY = "testing/tiny"


def smooth_images(frames: int, height: int, width: int, channels: int, seed: int) -> torch.Tensor:
    """Low-frequency colour fields in [0, 1]: what a photo is at the VAE's scale, not pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((frames, channels, max(2, height // 8), max(2, width // 8)), generator=generator)
    fields = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return fields.movedim(1, -1).contiguous()


class TinyImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyImage", category=CATEGORY, inputs=[
            io.Int.Input("width", default=64, min=1, max=4096, tooltip="Width in pixels."),
            io.Int.Input("height", default=64, min=1, max=4096, tooltip="Height in pixels."),
            io.Int.Input("frames", default=1, min=1, max=256, tooltip="Images (or video frames) in the batch."),
            io.Int.Input("channels", default=3, min=1, max=4, tooltip="3 RGB, 4 RGBA, anything else is wrong."),
            io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the colour fields."),
        ], outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, width: int, height: int, frames: int, channels: int, seed: int) -> io.NodeOutput:
        return io.NodeOutput(smooth_images(frames, height, width, channels, seed))


class TinyVideoVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyVideoVAE", category=CATEGORY,
                         inputs=[io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the weights.")],
                         outputs=[io.Vae.Output()])

    @classmethod
    def execute(cls, seed: int) -> io.NodeOutput:
        return io.NodeOutput(build_video_vae(seed))


class TinyFluxVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyFluxVAE", category=CATEGORY,
                         inputs=[io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the weights.")],
                         outputs=[io.Vae.Output()])

    @classmethod
    def execute(cls, seed: int) -> io.NodeOutput:
        return io.NodeOutput(build_flux_vae(seed))


NODES = [TinyImage, TinyVideoVAE, TinyFluxVAE]
