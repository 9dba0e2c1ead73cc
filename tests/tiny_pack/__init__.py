"""Test-only ComfyUI node pack: tiny real models, so workflows run on CPU without downloads.

The server harness (``tests/server/harness.py``) links this folder into the host's custom-nodes
directory next to the checkout; the shipped package never registers these nodes. Outputs are
deterministic in ``(family, seed)``, so two prompts can be compared bit for bit. Other modules of
this folder add test nodes through a module-level ``NODES`` list; all of them are registered.
"""
import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io

from .models import FAMILIES, build_conditioning, build_model, build_vae

CATEGORY = "testing/tiny"


def _family_input() -> io.Combo.Input:
    return io.Combo.Input("family", options=list(FAMILIES), tooltip="Architecture of the tiny model.")


def _seed_input() -> io.Int.Input:
    return io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the random weights or tensors.")


class TinyModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyModelLoader", category=CATEGORY, inputs=[_family_input(), _seed_input()],
                         outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, family: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(build_model(family, seed))


class TinyConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyConditioning", category=CATEGORY, inputs=[_family_input(), _seed_input()],
                         outputs=[io.Conditioning.Output()])

    @classmethod
    def execute(cls, family: str, seed: int) -> io.NodeOutput:
        return io.NodeOutput(build_conditioning(family, seed))


class TinyVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyVAE", category=CATEGORY, inputs=[_seed_input()], outputs=[io.Vae.Output()])

    @classmethod
    def execute(cls, seed: int) -> io.NodeOutput:
        return io.NodeOutput(build_vae(seed))


class TinyRaise(io.ComfyNode):
    """Fails at run time with a known message: the harness's execution-error path needs a sure failure."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyRaise", category=CATEGORY,
                         inputs=[io.Latent.Input("samples"), io.String.Input("message", default="tiny failure")],
                         outputs=[io.Latent.Output()])

    @classmethod
    def execute(cls, samples: dict, message: str) -> io.NodeOutput:
        raise RuntimeError(message)


def _module_nodes() -> list[type[io.ComfyNode]]:
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return [node for module in modules for node in getattr(module, "NODES", [])]


class TinyPack(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [TinyModelLoader, TinyConditioning, TinyVAE, TinyRaise, *_module_nodes()]


async def comfy_entrypoint() -> TinyPack:
    return TinyPack()
