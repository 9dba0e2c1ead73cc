"""Self-Cascade Demo Model: the pack's own small pixel-space model, so a workflow runs with no download."""
from __future__ import annotations

from functools import lru_cache

from ..models.demo import demo_model
from .api import CATEGORY, io


@lru_cache(maxsize=1)
def _demo():
    """(MODEL, count contexts, VAE), loaded once per process from the weights shipped in ``models/demo``."""
    model, contexts = demo_model.load_weights()
    return model, contexts, demo_model.pixel_vae()


class SelfCascadeDemoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelfCascadeDemoModel",
            display_name="Self-Cascade Demo Model",
            category=CATEGORY,
            description=("A tiny SD1.x-style UNet shipped with the pack (about 1M parameters, pixel space, trained at "
                         f"{demo_model.NATIVE_SIZE}x{demo_model.NATIVE_SIZE} on one to three coloured discs on a "
                         "textured grey background). Its prompt is the number of discs. For trying the cascade on "
                         "CPU in seconds; not an image model for real use."),
            inputs=[io.Int.Input("count", default=2, min=min(demo_model.COUNTS), max=max(demo_model.COUNTS),
                                 tooltip="How many discs to draw: the positive prompt.")],
            outputs=[io.Model.Output(tooltip="The demo model (native size 32x32, pixel space)."),
                     io.Conditioning.Output(display_name="positive", tooltip="The prompt for the chosen count."),
                     io.Conditioning.Output(display_name="negative", tooltip="The empty prompt, for CFG."),
                     io.Vae.Output(tooltip="ComfyUI's pixel-space VAE: decode and encode only rescale [-1, 1] <-> [0, 1].")],
        )

    @classmethod
    def execute(cls, count: int) -> io.NodeOutput:
        model, contexts, vae = _demo()
        return io.NodeOutput(model, demo_model.conditioning(contexts[count]), demo_model.conditioning(contexts[0]), vae)


NODES = [SelfCascadeDemoModel]
