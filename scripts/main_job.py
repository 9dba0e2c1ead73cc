"""The main job: one shipped workflow through a real, headless ComfyUI, saved under ``output/``.

Why through the server: it is exactly what a user's Queue button does, so this doubles as the
end-to-end check of packaging, node loading and the cascade. Without options it queues the API
export of ``workflows/self_cascade_demo.json``: the pack's own demo model (no download), cascaded
32 -> 64 -> 128. With ``--checkpoint`` it runs a checkpoint workflow on your own model file, read
where it lies (the server's checkpoints folder points at the file's folder; nothing is copied).

    python scripts/main_job.py [--workflow NAME] [--checkpoint FILE] [--prompt TEXT] [--negative TEXT]
                               [--target WxH] [--count N] [--demo-model unet|flow] [--seed S] [--steps N]
                               [--output DIR]

Run it with ComfyUI's Python (``bash scripts/main_job.sh`` provisions the test host, or uses
``COMFYUI_PATH``). The server runs on the GPU when torch sees one, and loads this pack and no other
custom nodes. Prints the stage report and, last, the saved files' paths, named by the size made. A
bad option exits with code 2 and one line on stderr; so does a target that would not cascade (at or
below the workflow's base or the model's native size, read from the file's header before any model
loads), with the smallest target that does. A prompt ComfyUI refuses or fails exits with 1 and one
line that names the node, the message and the kept server log.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, Optional

import requests
import torch
import websocket

from _bootstrap import find_comfyui
from comfy_headless import PACK_NAME, REPO, ComfyClient, ComfyError, ComfyServer, ExecutionFailed, PromptRejected

OUTPUT_DIR = REPO / "output"
API_WORKFLOWS = REPO / "workflows" / "api"
DEMO = "self_cascade_demo"
CHECKPOINT_DEFAULT = "sdxl_1024_to_2048_tuning_free"  # its Base Latent starts at any family's native size
CHECKPOINT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin")  # the host's model files
MAX_WORKFLOW_BYTES = 1 << 20
MAX_NODES = 500
RUN_TIMEOUT_S = 6 * 3600  # a 4096 px cascade of a full-size model on a small GPU takes a while
SAVERS = ("SaveImage", "SaveAnimatedWEBP", "SaveVideo", "SaveLatent")
CASCADES = ("SelfCascadeKSampler", "SelfCascadeUpscale")  # nodes whose target, seed and steps the options set
MIN_TARGET_SIDE = 64  # the Self-Cascade Base Latent's smallest target side
MAX_TARGET_SIDE = 16384  # ComfyUI's MAX_RESOLUTION, the nodes' largest side
MODEL_LOADERS = {"CheckpointLoaderSimple": "ckpt_name", "UNETLoader": "unet_name", "SelfCascadeDemoModel": None}
# the Self-Cascade Demo Model's architecture input -> the shipped workflow that runs it at its own settings
DEMO_WORKFLOWS = {"unet": DEMO, "flow": "self_cascade_demo_flow"}
SIZE_IN_NAME = re.compile(r"_\d+(?:x\d+)?$")  # "selfcascade/sd15_2048", "selfcascade/wan_1664x960"


class UsageError(Exception):
    """An option that does not fit: exit code 2, one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_target(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT in pixels (e.g. 2048x2048)")
    return int(match[1]), int(match[2])


def arguments(argv: Optional[list[str]]) -> argparse.Namespace:
    shipped = sorted(path.stem for path in API_WORKFLOWS.glob("*.json"))
    parser = Parser(prog="main_job", description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", choices=shipped, metavar="NAME",
                        help=f"shipped workflow to run (default {DEMO}; with --checkpoint {CHECKPOINT_DEFAULT}): "
                             + ", ".join(shipped))
    parser.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="your checkpoint file for the workflow's Load Checkpoint (read in place)")
    parser.add_argument("--prompt", metavar="TEXT", help="the workflow's positive prompt")
    parser.add_argument("--negative", metavar="TEXT", help="the workflow's negative prompt")
    parser.add_argument("--target", type=parse_target, metavar="WxH",
                        help=f"final size in pixels, {MIN_TARGET_SIDE} to {MAX_TARGET_SIDE} per side and larger than "
                             "the model's native size, e.g. 2048x2048")
    parser.add_argument("--count", type=int, help="demo model only: discs to draw, 1 to 3 (its prompt)")
    parser.add_argument("--demo-model", choices=list(DEMO_WORKFLOWS),
                        help="demo model only: unet (SD1.x-style, eps) or flow (Flux-style transformer, velocity), "
                             "each at its own sampler settings (the demo workflows'); default: the workflow's")
    parser.add_argument("--seed", type=int, help="noise seed (stage r uses seed + r)")
    parser.add_argument("--steps", type=int, help="steps of the base stage")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR, metavar="DIR",
                        help=f"where ComfyUI saves the results (default {OUTPUT_DIR.relative_to(REPO)}/ of this checkout)")
    args = parser.parse_args(argv)
    args.workflow = args.workflow or (CHECKPOINT_DEFAULT if args.checkpoint else DEMO)
    if args.demo_model is not None and args.workflow in DEMO_WORKFLOWS.values():
        args.workflow = DEMO_WORKFLOWS[args.demo_model]  # its CFG and K are measured for that model
    if args.target is not None and not all(MIN_TARGET_SIDE <= side <= MAX_TARGET_SIDE for side in args.target):
        raise UsageError(f"--target {args.target[0]}x{args.target[1]}: each side must be {MIN_TARGET_SIDE} to "
                         f"{MAX_TARGET_SIDE} px (the Self-Cascade nodes' range), e.g. 2048x2048")
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise UsageError(f"--checkpoint {args.checkpoint}: no such file")
        if args.checkpoint.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise UsageError(f"--checkpoint {args.checkpoint}: not a model file ({', '.join(CHECKPOINT_SUFFIXES)})")
        args.checkpoint = args.checkpoint.resolve()
    return args


def load_api_prompt(path: Path) -> dict:
    """An API-format prompt from a file, checked for size and shape; nothing in it is evaluated."""
    if path.stat().st_size > MAX_WORKFLOW_BYTES:
        raise UsageError(f"{path}: larger than {MAX_WORKFLOW_BYTES} bytes; not a workflow this job runs")
    prompt = json.loads(path.read_text())
    well_formed = isinstance(prompt, dict) and 0 < len(prompt) <= MAX_NODES and all(
        isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)
        for node in prompt.values())
    if not well_formed:
        raise UsageError(f"{path}: not an API-format prompt ({{id: {{class_type, inputs}}}}, at most {MAX_NODES} "
                         "nodes); re-export it with scripts/build_workflows.py")
    return prompt


def nodes_of(prompt: dict, class_types: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(id, node) of every node of these types, in id order."""
    return [(node_id, node) for node_id, node in prompt.items() if node["class_type"] in class_types]


def set_input(prompt: dict, workflow: str, option: str, class_types: tuple[str, ...], name: str, value,
              title: Optional[str] = None) -> None:
    """Set ``name`` on every node of ``class_types`` (titled ``title``) where it is a value, not a link."""
    targets = [node for _, node in nodes_of(prompt, class_types)
               if name in node["inputs"] and not isinstance(node["inputs"][name], list)
               and (title is None or node.get("_meta", {}).get("title") == title)]
    if not targets:
        raise UsageError(f"{option} does not apply to workflow {workflow}: it has no "
                         f"{' or '.join(class_types)}{f' titled {title}' if title else ''} with a {name} value")
    for node in targets:
        node["inputs"][name] = value


def apply_options(prompt: dict, args: argparse.Namespace) -> None:
    workflow = args.workflow
    if args.checkpoint is not None:
        set_input(prompt, workflow, "--checkpoint", ("CheckpointLoaderSimple",), "ckpt_name", args.checkpoint.name)
    for option, title, text in (("--prompt", "Positive", args.prompt), ("--negative", "Negative", args.negative)):
        if text is not None:
            set_input(prompt, workflow, option, ("CLIPTextEncode",), "text", text, title=title)
    if args.target is not None:
        sized = ("SelfCascadeBaseLatent",) if nodes_of(prompt, ("SelfCascadeBaseLatent",)) else CASCADES
        for name, side in zip(("target_width", "target_height"), args.target):
            set_input(prompt, workflow, "--target", sized, name, side)
    if args.demo_model is not None:  # an optional input, absent from exports that keep its default
        demo_nodes = nodes_of(prompt, ("SelfCascadeDemoModel",))
        if not demo_nodes:
            raise UsageError(f"--demo-model does not apply to workflow {workflow}: it has no SelfCascadeDemoModel")
        for _, node in demo_nodes:
            node["inputs"]["architecture"] = args.demo_model
    for option, class_types, name, value in (("--count", ("SelfCascadeDemoModel",), "count", args.count),
                                             ("--seed", (*CASCADES, "KSampler"), "seed", args.seed),
                                             ("--steps", (*CASCADES, "KSampler", "SelfCascadePivotReschedule"),
                                              "steps", args.steps)):
        if value is not None:
            set_input(prompt, workflow, option, class_types, name, value)


def rounded(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """A size as the planner rounds a target: each side to the nearest positive multiple."""
    return tuple(max(multiple, round(side / multiple) * multiple) for side in size)


def smallest_cascading_target(target: tuple[int, int], base: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The smallest target at ``target``'s aspect whose area exceeds the base's: the first that cascades."""
    width, height = target
    side = max(MIN_TARGET_SIDE, multiple * math.ceil(math.sqrt(base[0] * base[1] * width / height) / multiple))
    while True:
        size = (side, max(MIN_TARGET_SIDE, multiple * math.ceil(side * height / width / multiple)))
        if size[0] * size[1] > base[0] * base[1]:
            return size
        side += multiple


def cascade_target(prompt: dict) -> Optional[tuple[int, int]]:
    """The target the workflow's Self-Cascade KSampler plans for, when the prompt fixes it (not ``scale_by``)."""
    for class_type in ("SelfCascadeBaseLatent", "SelfCascadeKSampler"):
        for _, node in nodes_of(prompt, (class_type,)):
            size = (node["inputs"].get("target_width"), node["inputs"].get("target_height"))
            if all(isinstance(side, int) and side > 0 for side in size):
                return size
    return None


def workflow_base(prompt: dict) -> Optional[tuple[int, int]]:
    """The base size a Self-Cascade KSampler starts from when the prompt fixes it (an Empty Latent Image)."""
    for _, node in nodes_of(prompt, ("SelfCascadeKSampler",)):
        link = node["inputs"].get("latent_image")
        source = prompt.get(link[0]) if isinstance(link, list) else None
        if source and source["class_type"] == "EmptyLatentImage":
            return source["inputs"]["width"], source["inputs"]["height"]
    return None


def refuse_single_stage(target: tuple[int, int], base: tuple[int, int], base_is: str, multiple: int) -> None:
    """A target that would run one stage and no cascade is a bad option, said before any model loads."""
    made = rounded(target, multiple)
    if made[0] * made[1] <= base[0] * base[1]:
        smallest = smallest_cascading_target(made, base, multiple)
        raise UsageError(f"--target {target[0]}x{target[1]} is not larger than {base_is} {base[0]}x{base[1]}: the "
                         f"workflow would run a single stage, no cascade; the smallest target that cascades is "
                         f"{smallest[0]}x{smallest[1]} ({base[0] * 2}x{base[1] * 2} is one full 2x stage)")


def model_loader(prompt: dict) -> Optional[dict]:
    """The loader node of the model the cascade samples, followed through model patches (LoRA, shift)."""
    samplers = nodes_of(prompt, CASCADES)
    link = samplers[0][1]["inputs"].get("model") if samplers else None
    while isinstance(link, list) and link[0] in prompt:
        node = prompt[link[0]]
        if node["class_type"] in MODEL_LOADERS:
            return node
        link = node["inputs"].get("model")
    return None


def model_family(client: ComfyClient, prompt: dict) -> Optional[dict]:
    """The pack's family facts of the workflow's model (native size, size multiple) from its file's header,
    asked of the server's ``/selfcascade/family`` before anything is loaded; None when it cannot tell."""
    loader = model_loader(prompt)
    if loader is None:
        return None
    name_input = MODEL_LOADERS[loader["class_type"]]
    file_name = loader["inputs"].get(name_input, "") if name_input else ""
    try:
        answer = client.get("/selfcascade/family", loader=loader["class_type"], file=file_name).json()
    except requests.HTTPError:  # no such route: the pack failed to load, which the prompt's rejection will say
        return None
    return None if "error" in answer else answer


def name_outputs_by_size(prompt: dict, size: tuple[int, int]) -> None:
    """Savers' file names say the size made (``sd15_1024``), not the workflow's default (``sd15_2048``)."""
    shown = f"{size[0]}" if size[0] == size[1] else f"{size[0]}x{size[1]}"
    for _, node in nodes_of(prompt, SAVERS):
        prefix = node["inputs"].get("filename_prefix")
        if isinstance(prefix, str):
            node["inputs"]["filename_prefix"] = f"{SIZE_IN_NAME.sub('', prefix)}_{shown}"


def check_sizes(client: ComfyClient, prompt: dict, args: argparse.Namespace) -> None:
    """With the server up and no model loaded: refuse a target that does not cascade, name files by size."""
    target = cascade_target(prompt)
    family = model_family(client, prompt)
    if target is None or family is None:
        return
    multiple = family["size_multiple"]
    if nodes_of(prompt, ("SelfCascadeBaseLatent",)):
        refuse_single_stage(target, (family["native_width"], family["native_height"]),
                            f"the model's native size ({family['family']})", multiple)
    if args.target is not None:
        name_outputs_by_size(prompt, rounded(target, multiple))


def server_for(workdir: Path, args: argparse.Namespace) -> ComfyServer:
    """This pack and no other custom nodes (a user's ComfyUI may hold many), on the GPU when there is one."""
    model_paths = {"checkpoints": str(args.checkpoint.parent)} if args.checkpoint else {}
    options = {"output_dir": args.output, "cpu": not torch.cuda.is_available(), "model_paths": model_paths}
    host_custom_nodes = find_comfyui() / "custom_nodes"
    if REPO.parent.resolve() == host_custom_nodes.resolve():  # installed there: the host loads it itself
        (workdir / "custom_nodes").mkdir(exist_ok=True)
        return ComfyServer(workdir / "custom_nodes", workdir, extra_args=(
            "--disable-all-custom-nodes", "--whitelist-custom-nodes", REPO.name), **options)
    return ComfyServer.for_checkout(workdir, extra_args=("--disable-all-custom-nodes", "--whitelist-custom-nodes",
                                                         PACK_NAME), **options)


def failure_line(error: BaseException) -> str:
    if isinstance(error, PromptRejected):
        details = "; ".join(line.strip() for line in error.lines[1:]) or error.lines[0]
        return f"ComfyUI rejected the prompt: {details}"
    if isinstance(error, ExecutionFailed):
        return f"the prompt failed in {error.error.summary()}"
    return str(error).splitlines()[0]


def run(args: argparse.Namespace) -> int:
    workflow_path = API_WORKFLOWS / f"{args.workflow}.json"
    prompt = load_api_prompt(workflow_path)
    apply_options(prompt, args)
    base, target = workflow_base(prompt), cascade_target(prompt)
    if base is not None and target is not None:
        refuse_single_stage(target, base, "the workflow's base latent (its Empty Latent Image)", 8)
    workdir = Path(tempfile.mkdtemp(prefix="selfcascade-main-"))
    server = server_for(workdir, args)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"starting ComfyUI {server.comfyui} on {device}", flush=True)
    try:
        with server:
            with ComfyClient(server.url, timeout_s=RUN_TIMEOUT_S) as client:
                check_sizes(client, prompt, args)
                print(f"ComfyUI is up at {server.url}; queueing {workflow_path.relative_to(REPO)}", flush=True)
                result = client.run(prompt)
    except (ComfyError, TimeoutError, requests.RequestException, websocket.WebSocketException) as error:
        print(f"main_job: {failure_line(error)} (server log kept: {server.log_path})", file=sys.stderr)
        return 1
    except UsageError:
        shutil.rmtree(workdir, ignore_errors=True)  # refused before anything ran: no log worth keeping
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    for sampler_id, _ in nodes_of(prompt, CASCADES):
        print(result.text(sampler_id))
    for save_id, _ in nodes_of(prompt, SAVERS):
        for kind, entries in result.outputs.get(save_id, {}).items():
            for saved in entries if isinstance(entries, list) else []:
                if isinstance(saved, dict) and "filename" in saved:
                    print(f"{'image' if kind == 'images' else kind}: "
                          f"{server.output_dir / saved.get('subfolder', '') / saved['filename']}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    try:
        return run(arguments(argv))
    except UsageError as error:
        print(f"main_job: {error} (see --help)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
