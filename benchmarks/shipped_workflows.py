"""The shipped SD1.5 and SDXL + official adapter workflows on the real-layout checkpoints, through the real server.

Why: users run these files through CheckpointLoaderSimple and Load Upsampler Adapter on full
checkpoints. Their API exports (``workflows/api/``, what the frontend's Run button sends) are
queued as shipped except for what this CPU can run in minutes (sizes, steps) and the generated
files' names; every edit is recorded as a ``Change``, so a report says exactly what differs. Used by
``tests/server/test_real_layout_workflows.py`` (SD1.5) and ``benchmarks/run.py --full-size`` (both).
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
API_EXPORTS = REPO / "workflows" / "api"
SD15_WORKFLOW = "sd15_512_to_2048_tuning_free"
SDXL_ADAPTER_WORKFLOW = "sdxl_tuned_official_adapter"
SAMPLER = "SelfCascadeKSampler"
ADAPTER_LOADER = "SelfCascadeLoadUpsamplerAdapter"
NATIVE_PROBE_TARGET = 2048  # any target above the native area: the base latent is the family's native size


def _scripts_and_harness() -> None:
    for folder in (REPO / "scripts", REPO / "tests" / "server"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


@dataclass(frozen=True)
class Change:
    """One edit of a shipped API export: a changed input, an added node or a removed link."""

    node: str  # class_type (and id)
    input: str
    shipped: Any
    used: Any

    def line(self) -> str:
        return f"{self.node} {self.input}: {self.shipped!r} → {self.used!r}"


@dataclass
class EditedPrompt:
    """An API-format prompt read from ``workflows/api/<name>.json`` and the edits made to it."""

    name: str
    prompt: dict
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def load(cls, name: str) -> EditedPrompt:
        _scripts_and_harness()
        from main_job import load_api_prompt

        return cls(name, load_api_prompt(API_EXPORTS / f"{name}.json"))

    def copy(self) -> EditedPrompt:
        return EditedPrompt(self.name, copy.deepcopy(self.prompt), list(self.changes))

    def node_id(self, class_type: str) -> str:
        ids = [node_id for node_id, node in self.prompt.items() if node["class_type"] == class_type]
        if len(ids) != 1:
            raise ValueError(f"workflows/api/{self.name}.json: expected one {class_type} node, found {len(ids)}; "
                             "re-export it with scripts/build_workflows.py.")
        return ids[0]

    def inputs(self, class_type: str) -> dict:
        return self.prompt[self.node_id(class_type)]["inputs"]

    def set(self, class_type: str, name: str, value: Any) -> None:
        inputs = self.inputs(class_type)
        if name not in inputs:
            raise ValueError(f"workflows/api/{self.name}.json: {class_type} has no input '{name}'.")
        if inputs[name] != value:
            self.changes.append(Change(class_type, name, inputs[name], value))
            inputs[name] = value

    def unlink(self, class_type: str, name: str) -> None:
        shipped = self.inputs(class_type).pop(name)
        self.changes.append(Change(class_type, name, shipped, None))

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(max(int(key) for key in self.prompt) + 1)
        self.prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        self.changes.append(Change(f"{class_type} (added, id {node_id})", "inputs", None, inputs))
        return node_id


def sd15_prompt(checkpoint: str, base: int = 256, target: int = 512, steps: int = 2) -> EditedPrompt:
    """The shipped SD1.5 workflow at ``base`` -> ``target`` px (shipped: 512 -> 2048) in ``steps`` base steps."""
    edited = EditedPrompt.load(SD15_WORKFLOW)
    edited.set("CheckpointLoaderSimple", "ckpt_name", checkpoint)
    edited.set("EmptyLatentImage", "width", base)
    edited.set("EmptyLatentImage", "height", base)
    edited.set(SAMPLER, "steps", steps)
    edited.set(SAMPLER, "scale_by", target / base)
    return edited


def sdxl_adapter_prompt(checkpoint: str, base: int = 256, target: int = 512, steps: int = 3) -> EditedPrompt:
    """The shipped SDXL + official adapter workflow at ``base`` -> ``target`` px (shipped: 1024 -> 2048).

    Self-Cascade Base Latent always gives the family's native area (SDXL: 1024²), so the sampler's
    base latent comes from an added Empty Latent Image; the base-latent node still sets the target.
    """
    edited = EditedPrompt.load(SDXL_ADAPTER_WORKFLOW)
    edited.set("CheckpointLoaderSimple", "ckpt_name", checkpoint)
    edited.set("SelfCascadeBaseLatent", "target_width", target)
    edited.set("SelfCascadeBaseLatent", "target_height", target)
    empty = edited.add("EmptyLatentImage", width=base, height=base, batch_size=1)
    edited.set(SAMPLER, "latent_image", [empty, 0])
    edited.set(SAMPLER, "steps", steps)
    return edited


def save_sampler_output(edited: EditedPrompt, prefix: str) -> str:
    """An added SaveLatent of the sampler's output (an observation: decoded random-weight images saturate)."""
    return edited.add("SaveLatent", samples=[edited.node_id(SAMPLER), 0], filename_prefix=f"real_layout/{prefix}")


def native_probe(checkpoint: str) -> tuple[dict, str]:
    """CheckpointLoaderSimple -> Self-Cascade Base Latent -> SaveLatent: the native size the pack detects."""
    _scripts_and_harness()
    from harness import Graph

    graph = Graph()
    loader = graph.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    base = graph.node("SelfCascadeBaseLatent", model=loader, target_width=NATIVE_PROBE_TARGET,
                      target_height=NATIVE_PROBE_TARGET, batch_size=1, length=1)
    return graph.prompt, graph.node("SaveLatent", samples=base, filename_prefix="real_layout/native").id


def stage_lines(report: str) -> list[str]:
    """The sampler's report without its seconds: 'base: 256x256, 2 steps', 'stage 1: 512x512, K 0.70, 2 steps'."""
    return [line.rsplit(", ", 1)[0] for line in report.splitlines() if line.startswith(("base:", "stage "))]


@dataclass(frozen=True)
class WorkflowRun:
    """What one shipped workflow did on a real-layout checkpoint, through the server."""

    workflow: str
    checkpoint: str
    changes: list[str]
    native_px: int  # Self-Cascade Base Latent's native side on this checkpoint (SD1.5 512, SDXL 1024)
    stages: list[str]
    image_size: tuple[int, int]
    seconds: float  # wall time of the prompt, loading included
    adapter: str = ""  # Load Upsampler Adapter's text
    adapter_changes_output: float = 0.0  # max |tuned - tuning-free| of the target latent
    latent_max: float = 0.0  # max |tuned| of the target latent, the scale of the change above
    base_only_equal: bool = False  # a base-only run is bit-identical with and without the adapter

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def native_px(client, checkpoint: str) -> int:
    prompt, save_id = native_probe(checkpoint)
    return client.run(prompt).latent(save_id).shape[-1] * 8


def run_sd15(client, checkpoint: str, base: int = 256, target: int = 512, steps: int = 2) -> WorkflowRun:
    """The SD1.5 workflow through ``client``'s server; the image and the report read back."""
    edited = sd15_prompt(checkpoint, base, target, steps)
    started = time.perf_counter()
    result = client.run(edited.prompt)
    seconds = time.perf_counter() - started
    (image,) = result.images(edited.node_id("SaveImage"))
    return WorkflowRun(SD15_WORKFLOW, checkpoint, [c.line() for c in edited.changes], native_px(client, checkpoint),
                       stage_lines(result.text(edited.node_id(SAMPLER))), image.size, seconds)


def run_sdxl_adapter(client, checkpoint: str, base: int = 256, target: int = 512, steps: int = 3) -> WorkflowRun:
    """The SDXL + official adapter workflow, then the checks that the adapter acts only in the high-res stage.

    Against the same prompt without the adapter link: the target latent differs; with the target at the
    base (a base stage only) the two are bit-identical.
    """
    tuned = sdxl_adapter_prompt(checkpoint, base, target, steps)
    save_id = save_sampler_output(tuned, "tuned")
    started = time.perf_counter()
    result = client.run(tuned.prompt)
    seconds = time.perf_counter() - started
    (image,) = result.images(tuned.node_id("SaveImage"))
    tuned_latent = result.latent(save_id)

    def latent_without_adapter(edited: EditedPrompt) -> torch.Tensor:
        plain = edited.copy()
        plain.unlink(SAMPLER, "upsampler_adapter")
        return client.run(plain.prompt).latent(save_id)

    base_only = tuned.copy()
    base_only.set("SelfCascadeBaseLatent", "target_width", base)
    base_only.set("SelfCascadeBaseLatent", "target_height", base)
    base_only_tuned = client.run(base_only.prompt).latent(save_id)
    return WorkflowRun(
        SDXL_ADAPTER_WORKFLOW, checkpoint, [c.line() for c in tuned.changes], native_px(client, checkpoint),
        stage_lines(result.text(tuned.node_id(SAMPLER))), image.size, seconds,
        adapter=result.text(tuned.node_id(ADAPTER_LOADER)),
        adapter_changes_output=float((tuned_latent - latent_without_adapter(tuned)).abs().max()),
        latent_max=float(tuned_latent.abs().max()),
        base_only_equal=torch.equal(base_only_tuned, latent_without_adapter(base_only)))
