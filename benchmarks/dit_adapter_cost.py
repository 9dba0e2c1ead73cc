"""What the dit-lite upsampler adapter's tuned stage costs against the tuning-free stage (issue 22, item 4).

A tuned high-resolution call runs, besides the call itself, the pivot pass (the model's own blocks up
to the adapter's last point, over the pivot's tokens: a quarter of the image tokens) and the
upsamplers. No Flux.1 runs on this CPU and no GPU is lent, so the cost is stated twice:

1. Counted, at Flux.1-dev's real widths: ComfyUI's own ``comfy.supported_models.Flux`` with the config
   the host detects from a Flux.1-dev file (hidden 3072, 19 double + 38 single blocks, 16 latent
   channels, 2x2 patches, guidance embedding), built on the meta device (no weights, no download).
   One model call at 2048² (latent 256², batch 1: Flux.1-dev is guidance-distilled, one call per step
   at CFG 1) with a 512-token T5 context, tuning-free and with an untrained dit-lite adapter whose
   pivot is the 1024² latent (128²); counted as ``flops.py`` counts the UNet adapter rows (torch's
   ``FlopCounterMode``: matrix products and attention, routed to the host's SDPA attention; norms,
   activations and the bilinear resize are not counted). Also the whole 1024 -> 2048 cascade
   (20 steps, the pack's default K 0.7 on the model's own schedule).
2. Measured, process CPU seconds of the same two calls on this CPU, one torch thread, arms
   interleaved (the order alternates by round), several rounds: median and min-max of the per-round
   ratios. On the flow demo model (``models/demo/flow_demo_model.py``, its 64 -> 128 px stage) and on
   Flux.1 blocks (head width 128, RoPE axes, MLP ratio, patches, channels, context and vector widths as
   Flux.1-dev) at narrower widths, 2 double + 4 single blocks (pivot pass: half the blocks, as
   Flux.1's 29 of 57), with Flux.1's token proportions at 1024 -> 2048 (text tokens = 1/32 of the
   target's image tokens) and its balance of attention against linear layers (target tokens about
   5.5x the width). Weights ``normal_(0, 0.02)``, an untrained adapter: cost does not depend on them.
   The same calls are counted too, so each measured ratio stands beside its count.

    nice -n 10 python benchmarks/dit_adapter_cost.py                    # benchmarks/results/dit-adapter-cost.json
    python benchmarks/dit_adapter_cost.py --quick --out /tmp/cost.json   # plumbing check, seconds

``benchmarks/dit_cost_report.py`` renders the JSON as markdown.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import comfy.ldm.flux.model  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.supported_models  # noqa: E402
import comfyui_version  # noqa: E402
from comfy.ldm.modules.attention import attention_pytorch  # noqa: E402

from selfcascade.adapters.injection import apply_upsampler_adapter, direct_call_options  # noqa: E402
from selfcascade.adapters.modules import new_adapter  # noqa: E402
from selfcascade.models.demo import flow_demo_model  # noqa: E402
from selfcascade.sampling.schedule import pivot_sigmas  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "dit-adapter-cost.json"
META = torch.device("meta")
CPU = torch.device("cpu")
# comfy/model_detection.py's Flux.1 config for a Flux.1-dev file (hidden size, depths and widths read from its keys)
FLUX1_DEV = {"image_model": "flux", "guidance_embed": True, "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
             "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19,
             "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "patch_size": 2, "qkv_bias": True}
FLUX_HEAD_WIDTH = 128
T5_TOKENS = 512
FLUX_SIZES = (1024, 2048)  # px; Flux's latent is 8x smaller
LATENT_FACTOR = 8
CASCADE = {"steps": 20, "scheduler": "simple", "k": 0.7}  # Flux's usual scheduler; the pack's default K
TIMESTEP = 0.5
GUIDANCE = 3.5
ROUNDS = 7
MIN_ROUND_S = 0.5  # each arm runs enough calls per round to take about this long


@dataclasses.dataclass(frozen=True)
class Setup:
    """One model and one high-resolution call: the target latent's size, the pivot at half of it."""

    name: str
    config_class: type
    config: dict
    target_latent: int  # latent px per side at the target
    text_tokens: int
    batch: int = 1


def host_config(config: dict) -> dict:
    """``config`` plus ``txt_ids_dims`` where the host's FluxParams requires it ([] as its detection gives Flux.1)."""
    if "txt_ids_dims" in {field.name for field in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}:
        return {**config, "txt_ids_dims": []}
    return dict(config)


def flux1_blocks(hidden: int, target_tokens_side: int, depth: int = 2, single: int = 4) -> Setup:
    """Flux.1-dev's blocks at ``hidden`` wide, ``depth`` + ``single`` deep, ``target_tokens_side``² image tokens
    at the target and 1/32 as many text tokens (Flux.1's 512 to 128² at 2048²)."""
    config = {**FLUX1_DEV, "hidden_size": hidden, "num_heads": hidden // FLUX_HEAD_WIDTH, "depth": depth,
              "depth_single_blocks": single}
    patch = FLUX1_DEV["patch_size"]
    return Setup(f"Flux.1 blocks, hidden {hidden}", comfy.supported_models.Flux, host_config(config),
                 target_tokens_side * patch, max(1, target_tokens_side ** 2 // 32))


def flux1_dev() -> Setup:
    return Setup("Flux.1-dev", comfy.supported_models.Flux, host_config(FLUX1_DEV), FLUX_SIZES[1] // LATENT_FACTOR,
                 T5_TOKENS)


def flow_demo(target_px: int = 4 * flow_demo_model.NATIVE_SIZE) -> Setup:
    """The flow demo model and its last 16x stage (pixel space: latent px = image px), its prompt's tokens."""
    return Setup("flow demo model", flow_demo_model.SelfCascadeDemoFlow, dict(flow_demo_model.FLUX_CONFIG), target_px,
                 flow_demo_model.demo_model.CONTEXT_TOKENS)


def build(setup: Setup, device: torch.device, seed: int = 0) -> comfy.model_patcher.ModelPatcher:
    """The host's model of ``setup`` on ``device`` (meta: shapes only), weights ``normal_(0, 0.02)`` elsewhere."""
    model_config = setup.config_class(dict(setup.config))
    model_config.set_inference_dtype(torch.bfloat16 if device.type == "meta" else torch.float32, None)
    model = model_config.get_model({}, device=device)
    if device.type != "meta":
        generator = torch.Generator(device).manual_seed(seed)
        with torch.no_grad():
            for parameter in model.diffusion_model.parameters():
                parameter.normal_(0.0, 0.02, generator=generator)
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def tuned(model, device: torch.device, setup: Setup):
    """A clone of ``model`` with an untrained dit-lite adapter and a pivot of half the target latent."""
    adapter = new_adapter(model, "dit-lite")
    adapter.module.to(device)
    channels = model.model.diffusion_model.params.in_channels
    pivot = torch.zeros((1, channels, setup.target_latent // 2, setup.target_latent // 2))
    return apply_upsampler_adapter(model, adapter, pivot)


def _sdpa_attention(func, *args, **kwargs):
    return attention_pytorch(*args, **kwargs)


def call_inputs(model, setup: Setup, latent: int, device: torch.device, seed: int = 0) -> tuple:
    """(x, timestep, context, y, guidance) of one call at ``latent`` px per side."""
    params = model.model.diffusion_model.params
    dtype = model.model.get_dtype()
    generator = torch.Generator().manual_seed(seed)

    def tensor(*shape: int) -> torch.Tensor:
        if device.type == "meta":
            return torch.empty(shape, device=META, dtype=dtype)
        return torch.randn(shape, generator=generator).to(dtype)

    x = tensor(setup.batch, params.in_channels, latent, latent)
    context = tensor(setup.batch, setup.text_tokens, params.context_in_dim)
    y = tensor(setup.batch, params.vec_in_dim) if params.vec_in_dim else None
    guidance = torch.full((setup.batch,), GUIDANCE, device=device) if params.guidance_embed else None
    return x, torch.full((setup.batch,), TIMESTEP, device=device), context, y, guidance


def forward(model, inputs: tuple, options: Optional[dict] = None) -> torch.Tensor:
    """One call of ``model``'s transformer, its patches and wrappers included (as a sampler's call has them)."""
    x, timestep, context, y, guidance = inputs
    options = options if options is not None else direct_call_options(model)
    return model.model.diffusion_model(x, timestep, context, y, guidance, transformer_options=options)


def count(model, inputs: tuple) -> dict[str, int]:
    """Operations of one call by aten operator name (attention through the host's SDPA attention)."""
    options = direct_call_options(model)
    options["optimized_attention_override"] = _sdpa_attention
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(model, inputs, options)
    return {str(operator): value for operator, value in counter.get_flop_counts()["Global"].items()}


def adapter_operations(model, setup: Setup, device: torch.device) -> int:
    """Operations of the upsamplers alone on one call's pivot tokens (meta)."""
    adapter = new_adapter(model, "dit-lite")
    adapter.module.to(device)
    patch = model.model.diffusion_model.patch_size
    grid = (math.ceil(setup.target_latent / 2 / patch),) * 2
    target = (math.ceil(setup.target_latent / patch),) * 2
    width = model.model.diffusion_model.params.hidden_size
    features = [torch.empty((setup.batch, grid[0] * grid[1], width), device=device) for _ in adapter.spec.points]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        adapter.module(features, torch.full((setup.batch,), TIMESTEP, device=device), grid, target)
    return counter.get_total_flops()


def tokens(model, setup: Setup) -> dict[str, int]:
    patch = model.model.diffusion_model.patch_size
    side = math.ceil(setup.target_latent / patch)
    return {"target_image": side * side, "pivot_image": math.ceil(side / 2) ** 2, "text": setup.text_tokens}


def describe(model, setup: Setup) -> dict:
    params = model.model.diffusion_model.params
    return {"name": setup.name, "hidden_size": params.hidden_size, "heads": params.num_heads,
            "double_blocks": params.depth, "single_blocks": params.depth_single_blocks,
            "patch_size": model.model.diffusion_model.patch_size, "latent_channels": params.in_channels,
            "parameters": sum(p.numel() for p in model.model.diffusion_model.parameters()),
            "target_latent": setup.target_latent, "pivot_latent": setup.target_latent // 2, "batch": setup.batch,
            "tokens": tokens(model, setup)}


def counted(setup: Setup) -> dict:
    """The tuning-free and the tuned call of ``setup`` counted on the meta device, with the pivot pass's share."""
    model = build(setup, META)
    patched = tuned(model, META, setup)
    target = call_inputs(model, setup, setup.target_latent, META)
    free_ops, tuned_ops = sum(count(model, target).values()), sum(count(patched, target).values())
    adapter_ops = adapter_operations(model, setup, META)
    return {**describe(model, setup), "points": [list(point) for point in new_adapter(model, "dit-lite").spec.points],
            "tuning_free_flops": free_ops, "tuned_flops": tuned_ops, "upsampler_flops": adapter_ops,
            "pivot_pass_flops": tuned_ops - free_ops - adapter_ops, "ratio": tuned_ops / free_ops}


def flux_cascade(stage: dict) -> dict:
    """Flux.1-dev's whole 1024 -> 2048 cascade, tuned against tuning-free and tuning-free against direct."""
    setup = flux1_dev()
    model = build(setup, META)
    base = sum(count(model, call_inputs(model, setup, FLUX_SIZES[0] // LATENT_FACTOR, META)).values())
    stage_steps = len(pivot_sigmas(model.get_model_object("model_sampling"), CASCADE["scheduler"], CASCADE["steps"],
                                   CASCADE["k"])) - 1
    free = CASCADE["steps"] * base + stage_steps * stage["tuning_free_flops"]
    with_adapter = CASCADE["steps"] * base + stage_steps * stage["tuned_flops"]
    return {**CASCADE, "sizes": list(FLUX_SIZES), "stage_steps": stage_steps, "base_flops": base,
            "tuned_over_tuning_free": with_adapter / free,
            "tuning_free_over_direct": free / (CASCADE["steps"] * stage["tuning_free_flops"])}


def cpu_seconds(call: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return time.process_time() - started


def measured(setup: Setup, rounds: int, min_round_s: float) -> dict:
    """Both calls of ``setup`` on the CPU, arms interleaved (order alternating by round), CPU seconds per call."""
    model = build(setup, CPU)
    patched = tuned(model, CPU, setup)
    inputs = call_inputs(model, setup, setup.target_latent, CPU)
    arms = {"tuning-free": model, "tuned": patched}
    with torch.inference_mode():
        calls = {name: (lambda m=m: forward(m, inputs)) for name, m in arms.items()}
        warm = {name: cpu_seconds(call, 1) for name, call in calls.items()}  # the first call plans; unrecorded
        per_round = max(1, math.ceil(min_round_s / max(warm["tuning-free"], 1e-6)))
        readings = []
        for index in range(rounds):
            order = list(calls) if index % 2 == 0 else list(reversed(calls))
            seconds = {name: cpu_seconds(calls[name], per_round) / per_round for name in order}
            readings.append({"tuning_free_s": seconds["tuning-free"], "tuned_s": seconds["tuned"],
                             "ratio": seconds["tuned"] / seconds["tuning-free"]})
            print(f"[dit-cost] {setup.name} round {index + 1}: {readings[-1]['ratio']:.3f}", flush=True)
    ratios = [reading["ratio"] for reading in readings]
    return {**describe(model, setup), "calls_per_round": per_round, "rounds": readings,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "tuning_free_s": statistics.median(r["tuning_free_s"] for r in readings),
            "tuned_s": statistics.median(r["tuned_s"] for r in readings),
            "counted_ratio": counted(setup)["ratio"]}


def measured_setups(quick: bool) -> list[Setup]:
    """The flow demo model, then Flux.1 blocks ever wider; target tokens about 5.5x the width, as Flux.1's 2048²."""
    if quick:
        return [flow_demo(), flux1_blocks(256, 8)]
    return [flow_demo(), flux1_blocks(256, 38), flux1_blocks(512, 52), flux1_blocks(768, 64)]


def machine() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load} (shared machine)"


def run(quick: bool, rounds: int, min_round_s: float, out: Path, command: str) -> dict:
    torch.set_num_threads(1)
    started = time.process_time()
    flux = counted(flux1_blocks(256, 8) if quick else flux1_dev())  # quick: a tiny stand-in, no cascade
    flux.update(sizes=None if quick else list(FLUX_SIZES), cascade=None if quick else flux_cascade(flux))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = {
        "info": {"command": command, "date": date, "machine": machine(),
                 "device": "CPU, 1 torch thread, float32 (counts: meta, bfloat16)",
                 "software": f"torch {torch.__version__}, ComfyUI {comfyui_version.__version__}",
                 "rounds": rounds, "quick": quick},
        "flux1_dev": flux,
        "measured": [measured(setup, rounds, min_round_s) for setup in measured_setups(quick)],
    }
    result["info"]["cpu_s"] = time.process_time() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny configs, two rounds: the plumbing only")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--min-round-s", type=float, default=MIN_ROUND_S)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = "python benchmarks/dit_adapter_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rounds = 2 if args.quick and args.rounds == ROUNDS else args.rounds
    result = run(args.quick, rounds, args.min_round_s, args.out, command.strip())
    print(f"[dit-cost] Flux.1 stage tuned / tuning-free {result['flux1_dev']['ratio']:.3f} (counted); "
          + "; ".join(f"{m['name']}: {m['ratio']:.3f} ({m['ratio_min']:.3f}-{m['ratio_max']:.3f}) measured, "
                      f"{m['counted_ratio']:.3f} counted" for m in result["measured"]) + f"; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
