"""``benchmarks/run.py --full-size`` (issue #15): real-layout checkpoints, the shipped workflows on them, and the
budgets at real widths, timed on this CPU.

1. ``real_layout`` writes (or reuses) random-weight SD1.5 and SDXL checkpoints and the official
   ``upsampler_only.pth`` in their exact released layouts.
2. Through the real server, the shipped SD1.5 and SDXL + official adapter workflows run on them
   (``shipped_workflows``: sizes and steps cut to what this CPU runs in minutes; every edit listed).
3. In this process each checkpoint is loaded by ComfyUI's own loader, its detected config class
   checked, and the arms run in interleaved rounds (``sampling_bench``), timed by this process's CPU
   time, one torch thread: other jobs on the shared cores show in wall time, barely in CPU time.
   SD1.5: node and core-node graph (overhead), direct sampling; SDXL: the node tuning-free and with
   the lite (random) and official (the generated file) adapters, direct sampling. Peak memory per
   arm is the growth of the process's peak RSS over its sampling (weights are resident before; no
   VAE decode, which at these sizes would outweigh the UNet's activations).
4. The same generations' operation counts (``flops``) predict every ratio; attention's share of a
   call is counted at the measured sizes and at 1024² and 2048²; one call with and without the
   official adapter is profiled, to attribute what the adapter adds.

Writes ``<name>.json`` (every reading) and ``<name>.md`` (rendered by ``readme.full_size_markdown``,
as the README's block is).
"""
from __future__ import annotations

import cProfile
import datetime
import gc
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

import comfy.model_management
import comfy.sd
import comfyui_version
import nodes as core

from ..adapters.fileformat import load_adapter
from ..adapters.injection import UpsamplerInjection, apply_upsampler_adapter, direct_call_options
from ..adapters.modules import MIDDLE, UpsamplerAdapter, _cast
from . import readme, real_layout, report, shipped_workflows
from .flops import count_flops, operation_shares
from .measure import PeakMemory
from .models import ModelSet
from .sampling_bench import random_adapter, run_scenario
from .workloads import DIRECT, Workload

SIZES = (256, 512)  # base -> target px: a full-width UNet call in seconds to half a minute on one core
SECTIONS = {"sd15": {"overhead", "baselines"}, "sdxl": {"adapters", "baselines"}}
SHARE_SIZES = (256, 512, 1024, 2048)
WORKFLOW_STEPS = {"sd15": 2, "sdxl": 3}  # base steps of the server runs (stage: 2 of either schedule)
INJECTION_CHECK_PX = 128  # where the official adapter's additions are located: any size shows them
SERVER_TIMEOUT_S = 3600


def _prompts() -> tuple[str, str]:
    """The shipped workflows' positive and negative prompts."""
    sys.path.insert(0, str(shipped_workflows.REPO / "scripts"))
    from build_workflows import NEGATIVE, PROMPT

    return PROMPT, NEGATIVE


def load_real_layout(family: str, seed: int) -> tuple[ModelSet, str]:
    """The real-layout checkpoint through ``comfy.sd.load_checkpoint_guess_config``, prompts encoded by its CLIP."""
    path = real_layout.ensure_checkpoint(family, seed)
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path))
    detected = type(model.model.model_config).__name__
    if detected != real_layout.CONFIG_CLASS[family]:
        raise SystemExit(f"{path}: ComfyUI detected {detected}, not {real_layout.CONFIG_CLASS[family]}: the layout is wrong")
    positive, negative = (clip.encode_from_tokens_scheduled(clip.tokenize(text)) for text in _prompts())
    comfy.model_management.load_models_gpu([model], force_full_load=True)
    dtype = str(model.model.get_dtype()).removeprefix("torch.")
    description = (f"real-layout {family} checkpoint ({path.name}, random weights, detected {detected}, "
                   f"UNet {dtype} as ComfyUI loads it on a CPU)")
    return ModelSet(family, model, vae, positive, negative, description), detected


def injection_deltas(model, adapter: UpsamplerAdapter, size: int) -> dict[str, float]:
    """Where the adapter's features enter the high-resolution pass of one UNet call.

    For every input block and the middle block: max |input of the block that consumes its output -
    its output| (the middle block's consumer is output block 0, whose input starts with h). A plain
    UNet passes each output on unchanged, so a non-zero entry is exactly an injection point.
    """
    unet = model.model.diffusion_model
    generator = torch.Generator().manual_seed(0)
    pivot = torch.randn((1, 4, size // 16, size // 16), generator=generator)
    patched = apply_upsampler_adapter(model, adapter, pivot)
    blocks = [(f"input {index}", block) for index, block in enumerate(unet.input_blocks)] + [("middle", unet.middle_block)]
    consumers = [block for _, block in blocks[1:]] + [unet.output_blocks[0]]
    outputs, inputs, high_res = {}, {}, []

    def keep(readings: dict, name: str, tensor: torch.Tensor) -> None:
        if high_res:  # the pivot pass runs the same blocks first
            readings.setdefault(name, tensor)

    hooks = [adapter.module.register_forward_hook(lambda *_: high_res.append(True))]
    for (name, block), consumer in zip(blocks, consumers):  # the host runs a block's layers, not the block: hook those
        hooks.append(block[-1].register_forward_hook(lambda _m, _a, out, name=name: keep(outputs, name, out)))
        hooks.append(consumer[0].register_forward_pre_hook(lambda _m, args, name=name: keep(inputs, name, args[0])))
    config = model.model.model_config.unet_config
    dtype = model.model.get_dtype()
    x = torch.randn((1, 4, size // 8, size // 8), generator=generator).to(dtype)
    context = torch.randn((1, 77, config["context_dim"]), generator=generator).to(dtype)
    y = torch.zeros((1, config["adm_in_channels"]), dtype=dtype) if config.get("adm_in_channels") else None
    try:
        with torch.inference_mode():
            unet(x, torch.full((1,), 500.0), context, y, transformer_options=direct_call_options(patched))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: float((inputs[name][:, :out.shape[1]] - out).abs().max()) for name, out in outputs.items()}


def expected_points(adapter: UpsamplerAdapter) -> list[str]:
    """The blocks whose outputs the adapter changes on the backbone (all its points) or, in skip mode, the middle."""
    points = adapter.spec.points if adapter.spec.injection == "backbone" else (MIDDLE,)
    return ["middle" if point == MIDDLE else f"input {point[1]}" for point in points]


def warm_up(models: ModelSet, sizes: tuple[int, ...]) -> None:
    """One sampler step at every size, unrecorded: the first call at a shape allocates and plans its kernels."""
    with torch.inference_mode():
        for size in sizes:
            (latent,) = core.EmptyLatentImage().generate(size, size, 1)
            core.KSampler().sample(models.model, 0, 1, 7.5, "euler", "normal", models.positive, models.negative, latent)


def profile_adapter_call(models: ModelSet, adapter: UpsamplerAdapter, sizes: tuple[int, int]) -> tuple[dict, str]:
    """cProfile of one CFG-batch UNet call at the target, tuning-free and with ``adapter``: where the extra time goes."""
    base, target = sizes
    generator = torch.Generator().manual_seed(0)
    pivot = torch.randn((1, 4, base // 8, base // 8), generator=generator)
    x = torch.randn((2, 4, target // 8, target // 8), generator=generator)
    context = torch.cat([models.positive[0][0], models.negative[0][0]])
    y = None
    if models.model.model.model_config.unet_config.get("adm_in_channels"):
        y = torch.cat([models.model.model.encode_adm(pooled_output=cond[0][1]["pooled_output"], width=target,
                                                     height=target, target_width=target, target_height=target)
                       for cond in (models.positive, models.negative)])
    seconds, texts = {}, []
    tuned = apply_upsampler_adapter(models.model, adapter, pivot)
    for name, model in (("tuning-free", models.model), ("official adapter", tuned)):
        profiler = cProfile.Profile(time.process_time)  # CPU time, as the rounds: other jobs' load stays out
        with torch.inference_mode():
            model.model.diffusion_model(x, torch.full((2,), 500.0), context, y,
                                        transformer_options=direct_call_options(model))  # unprofiled warm-up
            started = time.process_time()
            profiler.runcall(model.model.diffusion_model, x, torch.full((2,), 500.0), context, y,
                             transformer_options=direct_call_options(model))
            seconds[name] = time.process_time() - started
        stats = pstats.Stats(profiler, stream=io.StringIO())
        if name != "tuning-free":
            for label, function in (("pivot pass", UpsamplerInjection._pivot_features),
                                    ("adapter modules", type(adapter.module).forward), ("weight casts", _cast),
                                    ("backbone additions", UpsamplerInjection.add_to_backbone),
                                    ("output block 0 addition", UpsamplerInjection.add_to_output_block)):
                seconds[label] = _cumulative(stats, function)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(r"adapters[/\\](injection|modules)\.py", 12)
        texts.append(f"### {name}: {seconds[name]:.2f} CPU s\n{stats.stream.getvalue()}")
    return seconds, "\n".join(texts)


def _cumulative(stats: pstats.Stats, function) -> float:
    """Cumulative seconds of ``function`` (a plain or unbound function) in a cProfile; 0 if it never ran."""
    code = function.__code__
    entry = stats.stats.get((code.co_filename, code.co_firstlineno, code.co_name))
    return entry[3] if entry else 0.0


def server_workflows(families: tuple[str, ...], seed: int) -> list[dict]:
    """The shipped workflows of ``families`` through a real server whose model folders hold the generated files."""
    shipped_workflows._scripts_and_harness()
    from harness import ComfyClient, ComfyServer

    folders = {kind: str(folder) for kind, folder in real_layout.model_folders(seed).items()}
    runs = []
    for family in families:  # one server each: the first family's models never share its memory with the next
        print(f"[full-size] {family} workflow through the server", flush=True)
        checkpoint = real_layout.CHECKPOINT_NAMES[family]
        with tempfile.TemporaryDirectory(prefix="selfcascade-fullsize-") as workdir, \
                ComfyServer.for_checkout(Path(workdir), model_paths=folders) as server, \
                ComfyClient(server.url, timeout_s=SERVER_TIMEOUT_S) as client:
            run = (shipped_workflows.run_sd15(client, checkpoint, *SIZES, steps=WORKFLOW_STEPS[family]) if family == "sd15"
                   else shipped_workflows.run_sdxl_adapter(client, checkpoint, *SIZES, steps=WORKFLOW_STEPS[family]))
            runs.append(run.as_dict())
    return runs


def measure_family(family: str, work: Workload, rounds: int, warmup: int, seed: int, device: torch.device,
                   profile: bool) -> tuple[dict, str]:
    """One family's checkpoint loaded, checked and timed; the JSON-ready readings and its profile text."""
    print(f"[full-size] loading the real-layout {family} checkpoint", flush=True)
    models, detected = load_real_layout(family, seed)
    entry = {"family": family, "detected_config": detected, "unet_dtype": str(models.model.model.get_dtype()),
             "unet_parameters": sum(p.numel() for p in models.model.model.diffusion_model.parameters())}
    adapters, profile_text = {}, ""
    if "adapters" in SECTIONS[family]:
        official = load_adapter(real_layout.ensure_official_adapter(seed))
        adapters = {"official-sdxl": official, "lite": random_adapter(models.model, "lite")}
        entry["adapters"] = {variant: {"parameters": adapter.parameter_count(), "injection": adapter.spec.injection,
                                       "weights": "the generated upsampler_only.pth" if variant == "official-sdxl"
                                       else "random normal(0, 0.02)"} for variant, adapter in adapters.items()}
        entry["injection"] = {"px": INJECTION_CHECK_PX, "expected": expected_points(official),
                              "max_abs_change": injection_deltas(models.model, official, INJECTION_CHECK_PX)}
        if profile:
            print("[full-size] profiling one call with the official adapter", flush=True)
            entry["profile_cpu_s"], profile_text = profile_adapter_call(models, official, work.sizes)
    print(f"[full-size] {family} {work.label()} px: warm-up, then {rounds} interleaved rounds", flush=True)
    warm_up(models, work.sizes)
    scenario = run_scenario(models, work, SECTIONS[family], rounds, warmup, device, decode_mode="none",
                            adapters=adapters, baselines=(DIRECT,), clock=time.process_time)
    entry["scenario"] = report.scenario_as_dict(scenario)
    count = count_flops(family, work)
    entry["predicted"] = {"adapter_ratio": count.adapter_ratio, "cascade_over_direct": count.cascade_over_direct,
                          "stage_steps": count.stage_steps,
                          "unet_flops": {str(size): flops for size, flops in count.unet_flops.items()}}
    return entry, profile_text


def run_full_size(families: tuple[str, ...], steps: int, rounds: int, warmup: int, seed: int, workflows: bool,
                  profile: bool, out: Path, name: str, command: str, machine: Callable[[], str]) -> int:
    """The whole mode; writes ``out/<name>.json`` and ``.md`` (and ``-profile.txt``)."""
    device = comfy.model_management.get_torch_device()
    for family in families:
        real_layout.ensure_checkpoint(family, seed)
    if "sdxl" in families:
        real_layout.ensure_official_adapter(seed)
    document = {"workflows": server_workflows(families, seed) if workflows else [], "families": []}
    profiles = []
    for family in families:
        entry, profile_text = measure_family(family, Workload(SIZES, steps), rounds, warmup, seed, device, profile)
        document["families"].append(entry)
        if profile_text:
            profiles.append(profile_text)
        comfy.model_management.unload_all_models()  # the family's models are unreferenced now: free them
        gc.collect()
    document["operation_shares"] = {family: {str(size): operation_shares(family, size) for size in SHARE_SIZES}
                                    for family in families}
    memory = PeakMemory(device)
    document["memory"] = {"unit": "bytes", "meaning": f"{memory.meaning}: peak RSS growth over each arm's sampling "
                          "(gc and malloc_trim first; weights resident before, no VAE decode)"}
    document["info"] = {
        "mode": name, "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"CPU, {torch.get_num_threads()} torch thread(s)", "machine": machine(),
        "software": f"torch {torch.__version__}, ComfyUI {comfyui_version.__version__}",
        "clock": "process CPU time (time.process_time)", "rounds": rounds, "warmup": warmup,
        "settings": Workload(SIZES, steps).summary(), "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written = [json_path, md_path]
    if profiles:
        written.append(out / f"{name}-profile.txt")
        written[-1].write_text(f"{command}, {document['info']['date']}\n\n" + "\n".join(profiles), encoding="utf-8")
    md_path.write_text(readme.full_size_markdown(readme.load(json_path)), encoding="utf-8")  # as the README reads it
    print(md_path.read_text(encoding="utf-8"))
    print(f"[full-size] wrote {', '.join(map(str, written))}")
    return 0
