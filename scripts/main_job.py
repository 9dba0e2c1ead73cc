"""The main job: the shipped demo workflow through a real, headless ComfyUI, saved as a PNG.

Why through the server: it is exactly what a user's "Queue" button does, so this doubles as the
end-to-end check of packaging, node loading and the cascade. It queues the API export of
``workflows/self_cascade_demo.json`` (``workflows/api/self_cascade_demo.json``, written by the real
frontend in ``scripts/build_workflows.py``): the pack's own demo model, trained here at 32x32 on
coloured discs, cascaded to 128x128 in two stages.

Usage: ``python scripts/main_job.py [--count N --seed S --steps N --size PX]`` with the host's
Python (``bash scripts/main_job.sh`` provisions it). Prints the stage report and, last, the image's path.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "server"))

import torch  # noqa: E402
from harness import ComfyClient, ComfyServer  # noqa: E402

OUTPUT_DIR = REPO / "output"
WORKFLOW = REPO / "workflows" / "api" / "self_cascade_demo.json"
MAX_WORKFLOW_BYTES = 1 << 20
MAX_NODES = 500


def load_api_prompt(path: Path) -> dict:
    """An API-format prompt from a file, checked for size and shape; nothing in it is evaluated."""
    if path.stat().st_size > MAX_WORKFLOW_BYTES:
        raise SystemExit(f"{path}: larger than {MAX_WORKFLOW_BYTES} bytes; not a workflow this job runs.")
    prompt = json.loads(path.read_text())
    well_formed = isinstance(prompt, dict) and 0 < len(prompt) <= MAX_NODES and all(
        isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)
        for node in prompt.values())
    if not well_formed:
        raise SystemExit(f"{path}: not an API-format prompt ({{id: {{class_type, inputs}}}}, at most {MAX_NODES} nodes); "
                         "re-export it with scripts/build_workflows.py.")
    return prompt


def node_of(prompt: dict, class_type: str) -> tuple[str, dict]:
    """The one node of ``class_type`` (id, inputs)."""
    matches = [(node_id, node["inputs"]) for node_id, node in prompt.items() if node["class_type"] == class_type]
    if len(matches) != 1:
        raise SystemExit(f"{WORKFLOW}: expected one {class_type} node, found {len(matches)}.")
    return matches[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="discs to draw, 1 to 3 (the demo model's prompt)")
    parser.add_argument("--seed", type=int, help="noise seed (stage r uses seed + r)")
    parser.add_argument("--steps", type=int, help="steps of the base stage")
    parser.add_argument("--size", type=int, help="final side in pixels (the demo model's native side is 32)")
    args = parser.parse_args()

    prompt = load_api_prompt(WORKFLOW)
    sampler_id, _ = node_of(prompt, "SelfCascadeKSampler")
    save_id, _ = node_of(prompt, "SaveImage")
    for class_type, name, value in (("SelfCascadeDemoModel", "count", args.count), ("SelfCascadeKSampler", "seed", args.seed),
                                    ("SelfCascadeKSampler", "steps", args.steps),
                                    ("SelfCascadeBaseLatent", "target_width", args.size),
                                    ("SelfCascadeBaseLatent", "target_height", args.size)):
        if value is not None:
            node_of(prompt, class_type)[1][name] = value

    with tempfile.TemporaryDirectory(prefix="selfcascade-main-") as workdir:
        server = ComfyServer.for_checkout(Path(workdir), output_dir=OUTPUT_DIR, cpu=not torch.cuda.is_available())
        print(f"starting ComfyUI (log: {server.log_path})", flush=True)
        with server:
            print(f"ComfyUI is up at {server.url}; queueing {WORKFLOW.relative_to(REPO)}", flush=True)
            try:
                with ComfyClient(server.url) as client:
                    result = client.run(prompt)
            except AssertionError:
                print(server.log_tail(), file=sys.stderr)
                raise
    print(result.text(sampler_id))
    saved = result.files(save_id, "images")[0]
    print(f"image: {OUTPUT_DIR / saved['subfolder'] / saved['filename']}")


if __name__ == "__main__":
    main()
