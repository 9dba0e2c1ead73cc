"""Write the in-app help pages ``web/docs/<NodeId>/en.md`` and ``web/docs/<NodeId>.md`` from the nodes' own schemas.

    .host/venv/bin/python scripts/build_node_docs.py

ComfyUI serves this pack's ``web/docs/`` at ``/extensions/<pack>/docs/``. The frontends (1.32 and
1.58 alike) ask for a custom node's help at ``docs/<NodeId>/<locale>.md`` first and fall back to
``docs/<NodeId>.md``: the English page sits at both, so an English frontend finds it at once (no
404) and any other locale still gets it through the fallback. Each page is the node's description,
a table of its inputs (type, default, range, tooltip) and outputs as the host's ``/object_info``
reports them, and the usage notes below: the tooltips stay the one source of what an input does, and
a test fails when a page falls behind its schema.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "web" / "docs"
PACK_CATEGORY = "sampling/self_cascade"
LOCALE = "en"  # the pages' language: the frontend's default locale
MAX_LISTED_CHOICES = 6
MODEL_FILES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".sft")  # a combo of these lists a model folder

USAGE = {
    "SelfCascadeKSampler": (
        "Use it where a KSampler would go. The node's panel lists the planned stages (size and steps) as you "
        "edit (with a ModelSampling shift node or a known checkpoint also the sigma and SNR each stage re-noises "
        "its pivot to), and after a run the size, steps, seconds, sigma and SNR of each stage. Each stage is at most "
        "2x per side; a 4x target runs two stages. Start from the model's native size (Self-Cascade Base Latent does it for "
        "you): SD1.5 512x512, SDXL and Flux 1024x1024, Wan 2.1 832x480.\n\n"
        "K (the k input) is the main dial: 0.7 is the paper's default; lower it (0.5-0.6) when details "
        "repeat or the image drifts from the base, raise it (0.8) for more new detail. later_k gives the second "
        "and later stages a K of their own (0 keeps k for every stage)."),
    "SelfCascadeUpscale": (
        "Load Image (or Get Video Components for a clip) -> Self-Cascade Upscale -> Save Image. Connect the model's "
        "own VAE and a prompt that describes the picture. The panel lists the stages from the image's size (each at "
        "most 2x per side) and, after a run, whether encoding and decoding were tiled and how long each stage "
        "took.\n\n"
        "k is how much the first stage may change the image: 0.3-0.5 keeps its composition, object count and "
        "colours while adding detail; 0.7 and above repaints and can move or repeat objects (the README has the "
        "measurements). later_k gives the second and later stages a K of their own. Stage r uses noise seed "
        "seed + r, as in the Self-Cascade KSampler, so a hand-built graph with those seeds gives the same result. "
        "Video models (Wan) get the frames as one clip; image models upscale each frame."),
    "SelfCascadeBaseLatent": (
        "Wire its target_width and target_height outputs into the Self-Cascade KSampler's inputs of the same "
        "names: the base then follows the target's aspect and you set the final size in one place."),
    "SelfCascadePivotReschedule": (
        "For hand-built cascades: KSampler (base) -> Pivot Upscale -> SamplerCustom with these sigmas and "
        "add_noise on. Use the same scheduler and steps as the base stage, and noise_seed = seed + stage."),
    "SelfCascadePivotUpscale": (
        "Between two stages of a hand-built cascade. Connect the model so the stage is sized as the Self-Cascade "
        "KSampler sizes it (its family's pixels per latent cell and size multiple). Connect a VAE for Flux and "
        "SD3, whose latents resize badly; leave it empty for SD1.5 and SDXL (latent bilinear is the paper's)."),
    "SelfCascadeLoadUpsamplerAdapter": (
        "Put adapter files in `models/upsampler_adapters` (or a path named `upsampler_adapters` in "
        "extra_model_paths.yaml) and press R to refresh the list. The official SDXL weights "
        "(`upsampler_only.pth`) load as they are."),
    "SelfCascadeApplyUpsamplerAdapter": (
        "One Apply Upsampler Adapter per high-resolution stage, fed by that stage's pivot; the Self-Cascade "
        "KSampler does this for you through its upsampler_adapter input."),
}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _choices(spec: list) -> list | None:
    """A combo's choices; None for other inputs."""
    if isinstance(spec[0], list):
        return spec[0]
    return spec[1].get("options", []) if spec[0] == "COMBO" else None


def _lists_files(choices: list | None) -> bool:
    return choices is not None and all(str(choice).endswith(MODEL_FILES) for choice in choices)


def _default(spec: list):
    options = spec[1] if len(spec) > 1 else {}
    choices = _choices(spec)
    if "default" in options or not choices or _lists_files(choices):
        return options.get("default", "")
    return choices[0]  # the frontend preselects a combo's first choice


def _core_lists(object_info: dict) -> list[list]:
    """The core KSampler's combos (samplers, schedulers): they grow with the host, so a page names them, not their length."""
    core = object_info.get("KSampler", {}).get("input", {}).get("required", {})
    return [choices for choices in map(_choices, core.values()) if choices]


def _range(spec: list, core_lists: list[list] = []) -> str:
    options = spec[1] if len(spec) > 1 else {}
    choices = _choices(spec)
    if choices is not None:
        if _lists_files(choices):
            return "the files in its model folder"
        if choices in core_lists:
            return "the same choices as ComfyUI's KSampler"
        if len(choices) > MAX_LISTED_CHOICES:
            return f"{len(choices)} choices"
        return ", ".join(f"`{choice}`" for choice in choices)
    if "min" in options or "max" in options:
        return f"{options.get('min', '')} to {options.get('max', '')}".strip()
    return ""


def _type(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def node_page(node_id: str, info: dict, core_lists: list[list] = []) -> str:
    rows = []
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            options = spec[1] if len(spec) > 1 else {}
            label = f"{name} (optional)" if group == "optional" else name
            rows.append(f"| {label} | {_type(spec)} | {_cell(_default(spec))} | {_cell(_range(spec, core_lists))} | "
                        f"{_cell(options.get('tooltip', ''))} |")
    outputs = [f"| {name} | {kind} | {_cell(tooltip or '')} |" for name, kind, tooltip in
               zip(info["output_name"], info["output"], info.get("output_tooltips") or [None] * len(info["output"]))]
    lines = [f"# {info['display_name']}", "", info["description"], "",
             "## Inputs", "", "| Input | Type | Default | Range | What it does |", "|---|---|---|---|---|", *rows, "",
             "## Outputs", "", "| Output | Type | What it is |", "|---|---|---|", *outputs]
    if node_id in USAGE:
        lines += ["", "## Usage", "", USAGE[node_id]]
    return "\n".join(lines) + "\n"


def pages(object_info: dict) -> dict[str, str]:
    """``{node id: markdown}`` for every node of this pack in ``object_info``."""
    core_lists = _core_lists(object_info)
    return {node_id: node_page(node_id, info, core_lists) for node_id, info in sorted(object_info.items())
            if info["category"].startswith(PACK_CATEGORY)}


def doc_files(object_info: dict) -> dict[str, str]:
    """``{path under web/docs: markdown}``: each page where the frontend looks first and where it falls back."""
    return {path: text for node_id, text in pages(object_info).items()
            for path in (f"{node_id}/{LOCALE}.md", f"{node_id}.md")}


def shipped_doc_files() -> dict[str, str]:
    """What ``web/docs`` holds now, keyed as ``doc_files``."""
    return {path.relative_to(DOCS).as_posix(): path.read_text() for path in sorted(DOCS.rglob("*.md"))}


def main() -> None:
    from comfy_headless import ComfyClient, ComfyServer

    with tempfile.TemporaryDirectory() as workdir, ComfyServer.for_checkout(Path(workdir)) as server, \
            ComfyClient(server.url) as client:
        files = doc_files(client.object_info())
    for stale in set(shipped_doc_files()) - set(files):
        (DOCS / stale).unlink()
        print(f"removed web/docs/{stale}")
    for path, text in files.items():
        (DOCS / path).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / path).write_text(text)
        print(f"wrote web/docs/{path}")


if __name__ == "__main__":
    main()
