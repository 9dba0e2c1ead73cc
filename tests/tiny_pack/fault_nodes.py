"""Test-only nodes that make faults and hidden state observable through the server.

- ``TinyLatent``: a latent of any shape filled with noise, a constant, NaN or Inf (bad-input tests).
- ``TinyOutOfMemory``: a model clone whose UNet raises the host's own OOM exception type from a
  given latent size on, as a too-large stage would on a GPU.
- ``TinyModelFingerprint``: passes a MODEL through and reports a digest of its weights,
  ``model_options`` and object patches, optionally after another node's output (``after``) so the
  digest is taken once that node has run.
- ``TinyModelWeightIds``: reports which objects hold a MODEL's weights (the module's and every
  parameter's and buffer's ``id``) and a digest of their values and ``requires_grad`` flags, so a
  test can tell whether a node swapped or changed the weights of a model ComfyUI has cached.
"""
import json
import hashlib

import torch

import comfy.model_management
import comfy.patcher_extension
from comfy_api.latest import io

CATEGORY = "testing/tiny"


class TinyLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyLatent", category=CATEGORY, inputs=[
            io.Int.Input("channels", default=4, min=1, max=64, tooltip="Latent channels."),
            io.Int.Input("size", default=8, min=1, max=256, tooltip="Latent height and width."),
            io.Combo.Input("fill", options=["noise", "nan", "inf"], tooltip="What the latent holds."),
            io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the noise."),
        ], outputs=[io.Latent.Output()])

    @classmethod
    def execute(cls, channels: int, size: int, fill: str, seed: int) -> io.NodeOutput:
        samples = torch.randn((1, channels, size, size), generator=torch.Generator().manual_seed(seed))
        if fill != "noise":
            samples[0, 0, 0, 0] = float(fill)
        return io.NodeOutput({"samples": samples})


class TinyOutOfMemory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyOutOfMemory", category=CATEGORY, inputs=[
            io.Model.Input("model", tooltip="Model to make fail."),
            io.Int.Input("from_latent_size", default=16, min=1, max=4096, tooltip="Latent side that runs out of memory."),
        ], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model, from_latent_size: int) -> io.NodeOutput:
        def out_of_memory(executor, x, *args, **kwargs):
            if x.shape[-1] >= from_latent_size:
                raise comfy.model_management.OOM_EXCEPTION(f"simulated: no memory for a {tuple(x.shape)} latent")
            return executor(x, *args, **kwargs)

        failing = model.clone()
        failing.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "tiny_oom", out_of_memory)
        return io.NodeOutput(failing)


def fingerprint(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(repr(model.model_options).encode())
    digest.update(repr(sorted(model.object_patches)).encode())
    digest.update(repr(sorted(model.patches)).encode())
    return digest.hexdigest()


class TinyModelFingerprint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyModelFingerprint", category=CATEGORY, is_output_node=True, inputs=[
            io.Model.Input("model", tooltip="Model to fingerprint."),
            io.Latent.Input("after", optional=True, tooltip="Take the digest only after this output exists."),
        ], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model, after=None) -> io.NodeOutput:
        return io.NodeOutput(model, ui={"text": [fingerprint(model)]})


class TinyModelWeightIds(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="TinyModelWeightIds", category=CATEGORY, is_output_node=True, inputs=[
            io.Model.Input("model", tooltip="Model whose weight objects are reported."),
            io.String.Input("label", default="", tooltip="Any text; a new one makes the node run again."),
        ], outputs=[])

    @classmethod
    def execute(cls, model, label: str) -> io.NodeOutput:
        module = model.model
        tensors = [*module.named_parameters(), *module.named_buffers()]
        values = hashlib.sha256()
        for name, tensor in tensors:
            values.update(f"{name}:{tensor.requires_grad};".encode())
            values.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        report = {"module": id(module), "tensors": len(tensors),
                  "ids": hashlib.sha256(repr([(name, id(tensor)) for name, tensor in tensors]).encode()).hexdigest(),
                  "values": values.hexdigest()}
        return io.NodeOutput(ui={"text": [json.dumps(report)]})


NODES = [TinyLatent, TinyOutOfMemory, TinyModelFingerprint, TinyModelWeightIds]
