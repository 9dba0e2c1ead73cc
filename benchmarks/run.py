"""Benchmark the Self-Cascade KSampler (issue #7): overhead, adapters, baselines, training throughput.

  python benchmarks/run.py --cpu-smoke      tiny models on the CPU, under a minute: benchmarks/results/cpu-smoke.*
  python benchmarks/run.py --gpu            full-size SD1.5 and SDXL UNets (random fp16 weights) on CUDA,
                                            1024->2048 and 1024->2048->4096: benchmarks/results/gpu-<card>.*
  python benchmarks/run.py --gpu --device cpu --size-override tiny    the GPU mode's code on tiny models
  python benchmarks/run.py --full-size      real-layout SD1.5 and SDXL checkpoints on this CPU, 256->512 px, about
                                            40 minutes: the shipped workflows through the server and the budgets at
                                            real widths (benchmarks/fullsize.py): benchmarks/results/full-size-cpu.*

Sections: overhead (the node against its UNet calls and against the hand-built core-node graph),
adapters (lite and official-sdxl upsampler adapters against tuning-free, SDXL), baselines (direct
sampling at the target and a two-pass hires fix: time and peak memory, VAE decode included),
training (adapter trainer steps/s and peak memory). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("overhead", "adapters", "baselines", "training", "flops")
DEFAULT_SECTIONS = SECTIONS[:4]  # flops: opt-in, minutes of CPU on meta tensors, the same on every machine
TINY_DIVISOR = 16  # --size-override tiny: 1024 px becomes 64 px, the tiny models' scale


@dataclass(frozen=True)
class Preset:
    """One mode's defaults: which generations and training runs, how many steps and rounds."""

    name: str
    tiny_models: bool
    scenarios: tuple[tuple[str, tuple[int, ...]], ...]  # (family, square sizes in px: base ... target)
    training: tuple[tuple[str, int], ...]  # (adapter variant, training crop in px), on SDXL
    steps: int
    rounds: int
    warmup: int
    train_steps: int
    train_warmup: int


CPU_SMOKE = Preset("cpu-smoke", True, (("sd15", (64, 128)), ("sdxl", (32, 64, 128))),
                   (("lite", 64), ("official-sdxl", 64)), steps=4, rounds=3, warmup=1, train_steps=2, train_warmup=1)
GPU = Preset("gpu", False, tuple((family, sizes) for family in ("sd15", "sdxl") for sizes in ((1024, 2048), (1024, 2048, 4096))),
             (("lite", 1024), ("official-sdxl", 1024), ("lite", 2048), ("official-sdxl", 2048)),
             steps=20, rounds=3, warmup=1, train_steps=5, train_warmup=2)


def shrunk(preset: Preset) -> Preset:
    """The GPU preset at the tiny models' scale (sizes / 16): its code path, runnable on a CPU."""
    return replace(preset, tiny_models=True,
                   scenarios=tuple((f, tuple(s // TINY_DIVISOR for s in sizes)) for f, sizes in preset.scenarios),
                   training=tuple((variant, crop // TINY_DIVISOR) for variant, crop in preset.training))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--cpu-smoke", action="store_true", help="tiny models, CPU, small sizes (the test suite runs it)")
    mode.add_argument("--gpu", action="store_true", help="full-size fp16 SD1.5 and SDXL UNets with random weights")
    mode.add_argument("--full-size", action="store_true",
                      help="real-layout checkpoints (generated, cached) through ComfyUI's loader and server, on the CPU")
    parser.add_argument("--no-workflows", action="store_true", help="--full-size: skip the server runs of the workflows")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda for --gpu, cpu for --cpu-smoke")
    parser.add_argument("--size-override", choices=("tiny",), help="--gpu on the tiny models at sizes / 16")
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)} (flops: counted for the --gpu mode's "
                             "full-size models on the meta device, whatever the mode)")
    parser.add_argument("--families", default="sd15,sdxl", help="comma-separated subset of sd15, sdxl")
    parser.add_argument("--targets", default="",
                        help="comma-separated target sizes to run, in the mode's px before any size override "
                             "(--gpu: 2048,4096); default: all")
    parser.add_argument("--steps", type=int, help="base-stage steps (high-res stages keep the part below K)")
    parser.add_argument("--rounds", type=int, help="recorded interleaved rounds (median over them)")
    parser.add_argument("--warmup", type=int, help="unrecorded rounds first")
    parser.add_argument("--train-steps", type=int, help="timed training steps per run")
    parser.add_argument("--train-batch", type=int, default=1, help="training batch")
    parser.add_argument("--train-crops", default="", help="comma-separated training crops in px (--gpu: 1024,2048)")
    parser.add_argument("--decode", choices=("auto", "whole", "tiled"), default="auto",
                        help="VAE decode: auto tiles where the host's estimate exceeds free memory")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; default 1 on the CPU (a shared machine: more threads only spin), "
                             "torch's own choice on a GPU")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for <name>.md and .json")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one run of the node and of the core-node graph per generation: <name>-profile.txt")
    parser.add_argument("--name", help="file name stem (default: cpu-smoke, gpu-<card> or gpu-tiny-<device>)")
    return parser


def selected(scenarios: tuple[tuple[str, tuple[int, ...]], ...], args: argparse.Namespace) -> tuple:
    """The scenarios of the families and targets the command line names (all by default)."""
    families = set(args.families.split(","))
    targets = {int(target) for target in args.targets.split(",") if target}
    return tuple((f, sizes) for f, sizes in scenarios if f in families and (not targets or sizes[-1] in targets))


def chosen_preset(args: argparse.Namespace) -> Preset:
    """The mode's preset narrowed and overridden by the command line."""
    preset = CPU_SMOKE if args.cpu_smoke else GPU
    crops = {int(crop) for crop in args.train_crops.split(",") if crop}
    preset = replace(preset, scenarios=selected(preset.scenarios, args),
                     training=tuple((v, crop) for v, crop in preset.training if not crops or crop in crops))
    if args.size_override == "tiny":
        preset = shrunk(preset)
    return replace(preset,
                   steps=args.steps or preset.steps, rounds=args.rounds or preset.rounds,
                   warmup=preset.warmup if args.warmup is None else args.warmup,
                   train_steps=args.train_steps or preset.train_steps)


def machine_line(load_before: tuple[float, ...]) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    load_after = os.getloadavg()
    return (f"host CPU {cpu}, {os.cpu_count()} cores, load average {load_before[0]:.1f} before and "
            f"{load_after[0]:.1f} after (other jobs share this machine)")


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size_override and not args.gpu:
        parser.error("--size-override shrinks the --gpu mode; --cpu-smoke is tiny already")
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def start_host(device_name: str):
    """ComfyUI on ``device_name``, this repo loaded as ``selfcascade``; returns the torch device it samples on."""
    if device_name == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch loads: ComfyUI then runs in CPU mode
    sys.path.insert(0, str(REPO / "scripts"))
    from _bootstrap import bootstrap

    bootstrap()
    import comfy.model_management

    device = comfy.model_management.get_torch_device()
    if device.type != device_name:
        raise SystemExit(f"asked for {device_name} but ComfyUI runs on {device}: is a CUDA build of torch installed?")
    return device


def full_size(args: argparse.Namespace, argv: Optional[list[str]], load_before: tuple[float, ...]) -> int:
    """--full-size: benchmarks/fullsize.py on the CPU, one torch thread unless --threads says otherwise."""
    start_host("cpu")
    import torch

    torch.set_num_threads(args.threads or 1)
    from selfcascade.benchmarks.fullsize import run_full_size

    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return run_full_size(tuple(args.families.split(",")), args.steps or 3, args.rounds or 3, args.warmup or 0,
                         seed=0, workflows=not args.no_workflows, profile=args.profile, out=args.out,
                         name=args.name or "full-size-cpu", command=command, machine=lambda: machine_line(load_before))


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    load_before = os.getloadavg()
    if args.full_size:
        return full_size(args, argv, load_before)
    device = start_host(args.device or ("cuda" if args.gpu else "cpu"))
    import torch

    import comfyui_version
    from selfcascade.benchmarks import report
    from selfcascade.benchmarks.flops import count_flops
    from selfcascade.benchmarks.measure import PeakMemory
    from selfcascade.benchmarks.models import full_models, tiny_models
    from selfcascade.benchmarks.profiling import overhead_profile
    from selfcascade.benchmarks.sampling_bench import run_scenario
    from selfcascade.benchmarks.training_bench import training_throughput
    from selfcascade.benchmarks.workloads import Workload

    preset = chosen_preset(args)
    sections = set(args.sections.split(","))
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    built = {}

    def models_for(family: str):
        if family not in built:
            built[family] = tiny_models(family) if preset.tiny_models else full_models(family)
        return built[family]

    scenarios, profiles = [], []
    if sections - {"training", "flops"}:
        for family, sizes in preset.scenarios:
            work = Workload(sizes, preset.steps)
            print(f"[bench] {family} {work.label()} px, {preset.warmup}+{preset.rounds} rounds", flush=True)
            scenarios.append(run_scenario(models_for(family), work, sections, preset.rounds, preset.warmup, device,
                                          args.decode))
            if args.profile:
                profiles.append(overhead_profile(models_for(family), work, device))
    training = []
    if "training" in sections and "sdxl" in args.families.split(","):
        with tempfile.TemporaryDirectory(prefix="selfcascade-bench-") as workdir:
            for variant, crop in preset.training:
                print(f"[bench] training {variant} at {crop} px", flush=True)
                training.append(training_throughput(models_for("sdxl"), variant, crop, args.train_batch,
                                                    preset.train_steps, preset.train_warmup, Path(workdir), device))
    flops = []
    if "flops" in sections:
        for family, sizes in selected(GPU.scenarios, args):
            print(f"[bench] counting FLOPs of full-size {family} at {'→'.join(map(str, sizes))} px", flush=True)
            flops.append(count_flops(family, Workload(sizes, args.steps or GPU.steps)))

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    name = args.name or (preset.name if args.cpu_smoke else
                         f"gpu-tiny-{device.type}" if preset.tiny_models else f"gpu-{card.replace(' ', '-').lower()}")
    info = report.RunInfo(
        mode=name, command="python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=f"{card}, {torch.get_num_threads()} torch thread(s)" if device.type == "cpu" else card,
        machine=machine_line(load_before), software=f"torch {torch.__version__}, ComfyUI {comfyui_version.__version__}",
        rounds=preset.rounds, warmup=preset.warmup,
        settings=scenarios[0].work.summary() if scenarios else "")
    memory = PeakMemory(device)
    descriptions = list(dict.fromkeys(models.description for models in built.values()))
    table = report.markdown(info, descriptions, scenarios, training, flops, memory)
    paths = report.write(args.out, name, table, report.as_json(info, scenarios, training, flops, memory))
    if profiles:
        paths += (args.out / f"{name}-profile.txt",)
        paths[-1].write_text(f"{info.command}, {info.date}, {info.device}\n\n" + "\n".join(profiles), encoding="utf-8")
    print(table)
    print(f"[bench] wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
