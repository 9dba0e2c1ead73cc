"""Self-Cascade Demo Model: the pack's own small pixel-space models, so a workflow runs with no download."""
from __future__ import annotations

from functools import lru_cache

from ..models.demo import demo_model, flow_demo_model
from .api import CATEGORY, io

# architecture -> its module (load_weights, conditioning); the first is the default
ARCHITECTURES = {"unet": demo_model, "flow": flow_demo_model}


@lru_cache(maxsize=len(ARCHITECTURES))
def _demo(architecture: str):
    """(MODEL, count contexts, VAE), loaded once per process from the weights shipped in ``models/demo``."""
    model, contexts = ARCHITECTURES[architecture].load_weights()
    return model, contexts, demo_model.pixel_vae()


class SelfCascadeDemoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeDemoModel",
            display_name="Self-Cascade Demo Model",
            category=CATEGORY,
            description=("A tiny model shipped with the pack, pixel space, trained at "
                         f"{demo_model.NATIVE_SIZE}x{demo_model.NATIVE_SIZE} on one to three coloured discs on a "
                         "textured grey background: an SD1.x-style UNet (eps prediction, about 1M parameters) or a "
                         "Flux-style flow-matching transformer (about 0.6M parameters). Its prompt is the number of "
                         "discs. For trying the cascade on CPU in seconds; not an image model for real use."),
            inputs=[io.Int.Input("count", default=2, min=min(demo_model.COUNTS), max=max(demo_model.COUNTS),
                                 tooltip="How many discs to draw: the positive prompt."),
                    io.Combo.Input("architecture", options=list(ARCHITECTURES), default=next(iter(ARCHITECTURES)),
                                   optional=True,
                                   tooltip=("unet: SD1.x-style UNet, eps prediction on the discrete schedule. flow: "
                                            "Flux-style transformer (4x4-pixel patches, RoPE, double and single "
                                            f"stream blocks), velocity prediction at sampling shift "
                                            f"{flow_demo_model.SHIFT:g}, as Flux, SD3 and Wan sample."))],
            outputs=[io.Model.Output(tooltip="The demo model (native size 32x32, pixel space)."),
                     io.Conditioning.Output(display_name="positive", tooltip="The prompt for the chosen count."),
                     io.Conditioning.Output(display_name="negative", tooltip="The empty prompt, for CFG."),
                     io.Vae.Output(tooltip="ComfyUI's pixel-space VAE: decode and encode only rescale [-1, 1] <-> [0, 1].")],
        )

    @classmethod
    def execute(cls, count: int, architecture: str = "unet") -> io.NodeOutput:
        model, contexts, vae = _demo(architecture)
        conditioning = ARCHITECTURES[architecture].conditioning
        return io.NodeOutput(model, conditioning(contexts[count]), conditioning(contexts[0]), vae)


NODES = [SelfCascadeDemoModel]
