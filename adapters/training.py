"""Cheap upsampler tuning: Algorithm 1 of the paper on a frozen ComfyUI model.

Per example: z0 = E(x0) at the target size, the pivot E(downsample(x0)) at half size, t ~ U(1/T, K]
mapped to the model's own sigma (``percent_to_sigma(1 - t)``, so eps, v and flow models all draw
from their own time axis), z_t by the host's ``noise_scaling``, and the loss

    mean(((denoised - z0) / c_out)^2),   c_out = d denoised / d model_output,

which is eps-MSE for eps models, v-MSE for v models and velocity-MSE for flow models (Flux and the
flow demo model with a DiT adapter), because the host's ``calculate_denoised`` is affine in the model output. Only the adapter's parameters get
gradients and optimizer state; the base model is frozen and left bit-identical.

Every random draw of step s (which examples, their noise, their t) is derived from (seed, s, item)
alone, so a resumed run repeats the uninterrupted one, and a data-parallel run over W processes
(each computing its slice of the same global batch, gradients summed with one all-reduce) matches a
single process with the same global batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import safetensors
import safetensors.torch
import torch
import torch.distributed as dist

import comfy.model_management
import comfy.sampler_helpers
import comfy.samplers

from .dataset import (Example, TextEncoder, TrainingCache, TrainingInputError, derive_seed, encode_caption,
                      encode_missing, examples_for, load_caption, load_example, scan_image_folder)
from .fileformat import replaced_atomically, write_adapter
from .injection import apply_upsampler_adapter, direct_call_options
from .modules import UpsamplerAdapter, new_adapter

STATE_FORMAT = "selfcascade-training-state/1"
STATE_SUFFIX = ".state.safetensors"
CHECKPOINT_NAME = re.compile(r"-step\d{6,}\.safetensors$")  # what checkpoint_path writes
MIN_TIME = 1.0 / 1000.0  # t = 1 of T = 1000: the paper's U{1..K}
FIXED_DRAW = "fixed"  # the draw of the fixed-batch yardstick, apart from every training step's
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainingSettings:
    width: int  # training crop in pixels; the pivot is half of it
    height: int
    steps: int  # optimizer steps in all (a resumed run continues up to this)
    k: float = 0.7  # K as a fraction of the model's time range (paper: 700 of 1000)
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 1  # examples per micro-batch in each process
    accumulation: int = 1  # micro-batches per optimizer step
    seed: int = 0
    precision: str = "auto"  # auto: bf16 (fp16 without bf16) autocast on GPU, fp32 on CPU

    def global_batch(self, world_size: int) -> int:
        return self.batch_size * self.accumulation * world_size

    def check(self) -> None:
        for name in ("width", "height", "steps", "batch_size", "accumulation"):
            if getattr(self, name) < 1:
                raise TrainingInputError(f"{name} = {getattr(self, name)}: it must be at least 1.")
        if not MIN_TIME < self.k <= 1.0:
            raise TrainingInputError(f"K = {self.k} is outside (0.001, 1]; the paper trains at 0.7 (t <= 700 of 1000).")
        if not self.learning_rate > 0:
            raise TrainingInputError(f"learning rate {self.learning_rate}: it must be above 0 (the paper uses 5e-5).")
        if self.precision not in PRECISIONS:
            raise TrainingInputError(f"precision '{self.precision}': choose one of {', '.join(PRECISIONS)}.")


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a data-parallel run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_from_main(self, tensor: torch.Tensor) -> None:
        if self.world_size > 1:
            dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def join_torchrun() -> ProcessGroup:
    """The process group torchrun describes in the environment (NCCL on GPU, gloo on CPU), or alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return ProcessGroup()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # before ComfyUI picks its device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size())


@dataclass(frozen=True)
class TrainingData:
    """The encoded examples and where each one's conditioning comes from."""

    examples: list[Example]
    caption_files: Optional[dict[str, Path]] = None  # caption -> cached conditioning (CLI with a text encoder)
    conditioning: Optional[list] = None  # one CONDITIONING for every example (the node)

    def conditioning_of(self, example: Example) -> list:
        if self.caption_files is not None:
            return load_caption(self.caption_files[example.caption])
        return self.conditioning


def prepare_data(image_folder: str | os.PathLike, vae, settings: TrainingSettings, cache: TrainingCache, vae_id: str,
                 encode_text: Optional[TextEncoder] = None, text_id: str = "", conditioning: Optional[list] = None,
                 group: ProcessGroup = ProcessGroup(),
                 progress: Optional[Callable[[int, int], None]] = None) -> TrainingData:
    """Scan, crop and encode the folder once (each process encodes its shard), captions too.

    Give ``encode_text`` (captions from sidecar ``.txt`` files, empty otherwise) or one
    ``conditioning`` for all images.
    """
    if (encode_text is None) == (conditioning is None):
        raise ValueError("give either encode_text (captions) or one conditioning for all images")
    check_resolution(settings.width, settings.height, vae.spacial_compression_encode())
    records = scan_image_folder(image_folder, settings.width, settings.height)
    examples = examples_for(records, cache, settings.seed, settings.width, settings.height, vae_id)
    shard = slice(group.rank, None, group.world_size)
    encode_missing(records[shard], examples[shard], vae, settings.seed, settings.width, settings.height, progress)
    caption_files = None
    if encode_text is not None:
        caption_files = {caption: cache.text_file(caption, text_id) for caption in sorted({r.caption for r in records})}
        for caption, text_file in list(caption_files.items())[shard]:
            if not text_file.exists():
                encode_caption(encode_text, caption, text_file)
    group.barrier()
    return TrainingData(examples, caption_files, conditioning)


def fresh_adapter(model, variant: str, injection: Optional[str], settings: TrainingSettings) -> UpsamplerAdapter:
    """An untrained adapter for ``model``, initialised from the seed (the global RNG is left as it was),
    recording the K it is trained for."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(settings.seed, "init"))
        return new_adapter(model, variant, injection, k_range=(0.0, settings.k))


def check_resolution(width: int, height: int, vae_factor: int) -> None:
    """The pivot is the crop at half size: both must be whole latents."""
    multiple = 2 * vae_factor
    for name, value in (("width", width), ("height", height)):
        if value % multiple:
            lower, upper = max(multiple, value // multiple * multiple), (value // multiple + 1) * multiple
            raise TrainingInputError(f"training {name} {value} px is not a multiple of {multiple} (twice the VAE's "
                                     f"{vae_factor}x factor, so that the half-size pivot is whole latents); "
                                     f"use {lower} or {upper}.")


def example_order(seed: int, epoch: int, count: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch)))


def global_batch_indices(seed: int, step: int, global_batch: int, count: int) -> list[int]:
    """Examples of step ``step``: the next ``global_batch`` positions of the endless run of epochs."""
    indices = []
    for position in range(step * global_batch, (step + 1) * global_batch):
        epoch, offset = divmod(position, count)
        indices.append(int(example_order(seed, epoch, count)[offset]))
    return indices


def item_draw(seed: int, draw: int | str, item: int, k: float, shape: torch.Size) -> tuple[float, torch.Tensor]:
    """(u in (1/T, K], unit noise) of item ``item`` of draw ``draw`` (a step, or ``FIXED_DRAW``):
    independent of which process or micro-batch runs it."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "item", draw, item))
    u = MIN_TIME + (k - MIN_TIME) * (1.0 - torch.rand((), generator=generator).item())
    return u, torch.randn(shape, generator=generator)


def output_scale(model_sampling, sigma: torch.Tensor, ndim: int) -> torch.Tensor:
    """c_out = d denoised / d model_output, from the host's own (affine) ``calculate_denoised``."""
    shape = (len(sigma),) + (1,) * (ndim - 1)
    ones, zeros = torch.ones(shape, device=sigma.device), torch.zeros(shape, device=sigma.device)
    return model_sampling.calculate_denoised(sigma, ones, zeros) - model_sampling.calculate_denoised(sigma, zeros, zeros)


def model_inputs(base_model, conditionings: list[list], noise: torch.Tensor, device: torch.device) -> dict:
    """``apply_model`` keyword arguments for a batch, one CONDITIONING per item, built by the host's
    own ``extra_conds`` (so SDXL's size embedding, Flux's guidance etc. are what sampling gives)."""
    per_item = []
    for conditioning, item_noise in zip(conditionings, noise.split(1)):
        if len(conditioning) != 1:
            raise TrainingInputError(f"the conditioning holds {len(conditioning)} entries (e.g. from Conditioning "
                                     "Combine); training needs one: use a single text encode.")
        conds = comfy.sampler_helpers.convert_cond(conditioning)
        conds = comfy.samplers.encode_model_conds(base_model.extra_conds, conds, item_noise, device, "positive")
        per_item.append({name: cond.process_cond(batch_size=1, device=device, area=None)
                         for name, cond in conds[0]["model_conds"].items()})
    return {name: per_item[0][name].concat([item[name] for item in per_item[1:]]) for name in per_item[0]}


def _frozen_alias(tensor: torch.Tensor) -> torch.Tensor:
    """An ordinary tensor without gradient on ``tensor``'s storage (no copy)."""
    if tensor.is_inference():
        return torch.from_dlpack(tensor.detach())  # created outside inference mode: autograd may save it
    return tensor.detach()


class _ApplyModel(torch.nn.Module):
    """``apply_model`` of a ComfyUI base model as a module's forward, for ``torch.func.functional_call``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.model.apply_model(*args, **kwargs)


def apply_frozen(model: torch.nn.Module, *args, **kwargs) -> torch.Tensor:
    """``model.apply_model(*args, **kwargs)`` with gradients to the adapter alone, the model's weights untouched.

    The adapter's features enter the UNet's decoder, so autograd saves the weights of every layer
    after them for backward. ComfyUI loads weights under ``torch.inference_mode``: such inference
    tensors cannot be saved, and weights that require grad would collect gradients. So the call runs
    through ``torch.func.functional_call`` on a frozen ordinary alias of every parameter and buffer
    (no copy: weights + adapter + activations at peak); the module that every clone and ComfyUI's
    cache share keeps its parameter objects, flags and values.
    """
    tensors = [*model.named_parameters(), *model.named_buffers()]
    weights = {f"model.{name}": _frozen_alias(tensor) for name, tensor in tensors}
    return torch.func.functional_call(_ApplyModel(model), weights, args, kwargs)


@contextlib.contextmanager
def saved_activation_copies(model: torch.nn.Module) -> Iterator[None]:
    """Autograd keeps copies of the activations it saves (the weights as they are) while gradients flow
    through ``model``'s transformer blocks.

    The host's Flux blocks add their residuals in place (``img += ...``, ``x += ...``) into tensors a
    LayerNorm saved for the backward pass; once a DiT adapter's features enter the image tokens those
    tensors are on the gradient's path and backward would refuse them. Copies keep the gradients exact;
    the weights (never written in place) are recognised by their storage and not copied.
    """
    weights = {tensor.untyped_storage().data_ptr() for tensor in (*model.parameters(), *model.buffers())}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor if tensor.untyped_storage().data_ptr() in weights else tensor.clone()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved):
        yield


@contextlib.contextmanager
def host_training() -> Iterator[None]:
    """The host's training mode while gradients flow through its model: newer hosts (ComfyUI 0.33) run fused
    inference kernels without autograd (comfy_kitchen's RoPE, INT8 linears) unless ``model_management.in_training``
    is set, as their own training node sets it; older hosts have no such flag and need none."""
    if not hasattr(comfy.model_management, "in_training"):
        yield
        return
    previous, comfy.model_management.in_training = comfy.model_management.in_training, True
    try:
        yield
    finally:
        comfy.model_management.in_training = previous


def model_fingerprint(module: torch.nn.Module) -> str:
    """sha256 of every tensor's name, shape and dtype and the bytes of the first and last tensor: tells
    models apart without hashing gigabytes (for models that came without a file)."""
    digest = hashlib.sha256()
    tensors = list(module.state_dict().items())
    for name, tensor in tensors:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    for _, tensor in (tensors[0], tensors[-1]) if tensors else ():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-dim too
    return digest.hexdigest()


def state_path(adapter_path: str | os.PathLike) -> Path:
    """The optimizer-state sidecar of an adapter checkpoint: ``<name>.state.safetensors``."""
    path = Path(adapter_path)
    stem = path.name[:-len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    return path.with_name(stem + STATE_SUFFIX)


@dataclass(frozen=True)
class StepReport:
    step: int  # optimizer steps done
    total: int
    loss: float  # mean over the global batch


class Trainer:
    """The adapter, its AdamW and the step counter; ``run`` trains, ``save`` checkpoints."""

    def __init__(self, model, adapter, data: TrainingData, settings: TrainingSettings, base_model_id: str,
                 group: ProcessGroup = ProcessGroup()):
        settings.check()
        self.model, self.adapter, self.data, self.settings = model, adapter, data, settings
        self.base_model_id, self.group = base_model_id, group
        self.device = comfy.model_management.get_torch_device()
        self.model_sampling = model.get_model_object("model_sampling")
        self.autocast_dtype = self._autocast_dtype()
        self.parameters = [p for p in adapter.module.parameters()]
        adapter.module.to(self.device, torch.float32).train()
        for parameter in self.parameters:
            parameter.requires_grad_(True)
            group.broadcast_from_main(parameter.data)  # every process starts from rank 0's initial weights
        self.optimizer = torch.optim.AdamW(self.parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.loss = float("nan")

    def _autocast_dtype(self) -> Optional[torch.dtype]:
        precision = self.settings.precision
        if self.device.type != "cuda" or precision == "fp32":
            return None
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if precision == "bf16" else torch.float16

    def _micro_batch_loss(self, items: list[tuple[int, int]], draw: int | str) -> torch.Tensor:
        """Sum of the per-example losses of ``items`` = [(global item index, example index)]."""
        latents, pivots, noises, sigmas, conditionings = [], [], [], [], []
        for item, index in items:
            example = self.data.examples[index]
            latent, pivot = load_example(example.latent_file)
            u, noise = item_draw(self.settings.seed, draw, item, self.settings.k, latent.shape)
            latents.append(latent)
            pivots.append(pivot)
            noises.append(noise)
            sigmas.append(float(self.model_sampling.percent_to_sigma(1.0 - u)))
            conditionings.append(self.data.conditioning_of(example))
        base_model = self.model.model
        target = base_model.process_latent_in(torch.cat(latents).to(self.device))
        noise = torch.cat(noises).to(self.device)
        sigma = torch.tensor(sigmas, device=self.device)
        noisy = self.model_sampling.noise_scaling(sigma, noise, target)
        inputs = model_inputs(base_model, conditionings, noisy, self.device)
        patched = apply_upsampler_adapter(self.model, self.adapter, torch.cat(pivots).to(self.device))
        copies = saved_activation_copies(base_model) if self.adapter.spec.dit else contextlib.nullcontext()
        with copies, torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
            denoised = apply_frozen(patched.model, noisy, sigma, transformer_options=direct_call_options(patched), **inputs)
        scale = output_scale(self.model_sampling, sigma, noisy.ndim)
        per_example = ((denoised.float() - target) / scale).pow(2).flatten(1).mean(dim=1)
        return per_example.sum()

    def _micro_batches(self, indices: list[int]) -> Iterator[list[tuple[int, int]]]:
        """This process's micro-batches of the global batch ``indices``, as (item, example index)."""
        size = self.settings.batch_size
        first = self.group.rank * size * self.settings.accumulation
        for micro in range(self.settings.accumulation):
            start = first + micro * size
            yield [(item, indices[item]) for item in range(start, start + size)]

    def train_step(self) -> float:
        """One optimizer step over the global batch; returns its mean loss."""
        global_batch = self.settings.global_batch(self.group.world_size)
        indices = global_batch_indices(self.settings.seed, self.step, global_batch, len(self.data.examples))
        loss_sum = torch.zeros((), device=self.device)
        for items in self._micro_batches(indices):
            with host_training():
                loss = self._micro_batch_loss(items, self.step)
                self.scaler.scale(loss / global_batch).backward()
            loss_sum += loss.detach()
        self._all_reduce_gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.loss = float(self.group.all_reduce_sum(loss_sum)) / global_batch
        return self.loss

    def fixed_batch_loss(self) -> float:
        """Mean loss over one fixed global batch with fixed noise and t, without training.

        The step loss moves with each step's draws of t; this yardstick does not, so comparing it
        before and after training shows what the adapter learned.
        """
        global_batch = self.settings.global_batch(self.group.world_size)
        indices = global_batch_indices(self.settings.seed, 0, global_batch, len(self.data.examples))
        with torch.no_grad():
            comfy.model_management.load_models_gpu([self.model], force_full_load=True)
            total = sum(self._micro_batch_loss(items, FIXED_DRAW) for items in self._micro_batches(indices))
        return float(self.group.all_reduce_sum(total)) / global_batch

    def _all_reduce_gradients(self) -> None:
        """Sum the processes' gradients (each already divided by the global batch): one flat all-reduce."""
        if self.group.world_size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
        flat = self.group.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))
        for parameter, chunk in zip(self.parameters, flat.split([g.numel() for g in grads])):
            parameter.grad = chunk.view_as(parameter).clone()

    def run(self, on_step: Optional[Callable[[StepReport], None]] = None,
            checkpoint_every: int = 0, on_checkpoint: Optional[Callable[[int], None]] = None) -> float:
        """Train from the current step up to ``settings.steps``; returns the last loss."""
        with torch.inference_mode(False), torch.enable_grad():
            comfy.model_management.load_models_gpu([self.model], force_full_load=True)
            self._train_until_done(on_step, checkpoint_every, on_checkpoint)
        return self.loss

    def _train_until_done(self, on_step, checkpoint_every, on_checkpoint) -> None:
        while self.step < self.settings.steps:
                self.train_step()
                if on_step is not None:
                    on_step(StepReport(self.step, self.settings.steps, self.loss))
                if checkpoint_every and self.step % checkpoint_every == 0 and self.step < self.settings.steps \
                        and on_checkpoint is not None:
                    on_checkpoint(self.step)
        return self.loss

    # checkpoints

    def training_metadata(self) -> dict[str, str]:
        """What the adapter file records about how it was trained."""
        return {"base_model": self.base_model_id, "steps": str(self.step), "k": f"{self.settings.k:g}",
                "resolution": f"{self.settings.width}x{self.settings.height}", "images": str(len(self.data.examples)),
                "loss": f"{self.loss:.6g}", "seed": str(self.settings.seed),
                "learning_rate": f"{self.settings.learning_rate:g}",
                "global_batch": str(self.settings.global_batch(self.group.world_size))}

    def save(self, path: str | os.PathLike, overwrite: bool = False, with_state: bool = True) -> Path:
        """The adapter (training facts in its provenance) and, for resuming, its state sidecar.

        Only the main process writes. Both files are replaced together once both are written, so a
        failure (disk full) leaves the previous files, if any, and nothing else.
        """
        path = Path(path)
        if not self.group.is_main:
            return path
        refuse_existing(path, overwrite)
        with contextlib.ExitStack() as files:
            write_adapter(files.enter_context(replaced_atomically(path)), self.trained_adapter())
            if with_state:
                tensors, metadata = self._state_tensors()
                safetensors.torch.save_file(tensors, files.enter_context(replaced_atomically(state_path(path))),
                                            metadata=metadata)
        return path

    def trained_adapter(self) -> UpsamplerAdapter:
        """The adapter with how it was trained in its provenance (same weights, shared module)."""
        provenance = {**self.adapter.spec.provenance, **self.training_metadata()}
        return UpsamplerAdapter(dataclasses.replace(self.adapter.spec, provenance=provenance), self.adapter.module)

    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Adapter weights (fp32, exact), AdamW moments and counters: tensors, scalars in JSON metadata."""
        tensors = {f"param.{name}": p.detach().float().cpu().contiguous()
                   for name, p in self.adapter.module.named_parameters()}
        optimizer_state = self.optimizer.state_dict()
        scalars = {}
        for index, state in optimizer_state["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{key}"] = value
        metadata = {"format": STATE_FORMAT, "step": str(self.step), "loss": repr(self.loss),
                    "settings": json.dumps(dataclasses.asdict(self.settings)),
                    "world_size": str(self.group.world_size), "base_model": self.base_model_id,
                    "param_groups": json.dumps(optimizer_state["param_groups"]), "optimizer_scalars": json.dumps(scalars),
                    "grad_scaler": json.dumps(self.scaler.state_dict())}
        return tensors, metadata

    def restore(self, adapter_path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by ``save``: weights, AdamW state and step, exactly."""
        metadata, tensors = read_state(adapter_path)
        if metadata["base_model"] != self.base_model_id:
            raise TrainingInputError(f"checkpoint '{adapter_path}' was trained on another base model; resume with the "
                                     "model it was trained on, or start a new run.")
        with torch.no_grad():
            for name, parameter in self.adapter.module.named_parameters():
                parameter.copy_(tensors[f"param.{name}"])
        state: dict[int, dict] = {}
        for name, tensor in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = tensor
        for name, value in json.loads(metadata["optimizer_scalars"]).items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
        scaler_state = json.loads(metadata["grad_scaler"])
        if scaler_state:
            self.scaler.load_state_dict(scaler_state)
        self.step = int(metadata["step"])
        self.loss = float(metadata["loss"])


def read_state(adapter_path: str | os.PathLike, with_tensors: bool = True) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint's state sidecar, checked to be ours (tensors empty if not wanted)."""
    sidecar = state_path(adapter_path)
    if not sidecar.is_file():
        raise TrainingInputError(f"'{adapter_path}' has no training state '{sidecar.name}' next to it; resume from a "
                                 "checkpoint this trainer wrote (the .state.safetensors file goes with it).")
    try:
        with safetensors.safe_open(str(sidecar), "pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()} if with_tensors else {}
    except Exception as error:  # safetensors' own parse errors: truncated or not safetensors
        raise TrainingInputError(f"'{sidecar}' is corrupt or truncated ({error}); resume from another checkpoint.") from None
    if metadata.get("format") != STATE_FORMAT:
        raise TrainingInputError(f"'{sidecar}' is not a training state of this trainer (format "
                                 f"{metadata.get('format')!r}); resume from a checkpoint it wrote.")
    return metadata, tensors


def checkpoint_progress(adapter_path: str | os.PathLike) -> tuple[TrainingSettings, int]:
    """The settings a checkpoint was trained with and the steps it has done (weights not read)."""
    metadata, _ = read_state(adapter_path, with_tensors=False)
    return TrainingSettings(**json.loads(metadata["settings"])), int(metadata["step"])


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Refuse to replace an adapter (or its state) unless asked to."""
    if overwrite:
        return
    for existing in (path, state_path(path)):
        if existing.exists():
            raise TrainingInputError(f"'{existing}' already exists; choose another name or allow overwriting.")


def checkpoint_path(output: Path, step: int) -> Path:
    """Intermediate checkpoint name: ``<name>-step000500.safetensors`` next to the final output."""
    stem = output.name[:-len(".safetensors")] if output.name.endswith(".safetensors") else output.name
    return output.with_name(f"{stem}-step{step:06d}.safetensors")


def is_training_byproduct(file_name: str) -> bool:
    """A state sidecar or an intermediate checkpoint (``checkpoint_path``): files to resume from, not
    adapters to pick, so the adapter list leaves them out."""
    return file_name.endswith(STATE_SUFFIX) or CHECKPOINT_NAME.search(file_name) is not None
