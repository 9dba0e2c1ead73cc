"""Every shipped example workflow opens cleanly in the real frontend, exports, and runs on the server.

Per workflow: ``app.loadGraphData`` flags no missing node, no placeholder and no widget value that
moved; ``app.graphToPrompt`` exports every node; the export, moved onto the tiny test models (see
``tiny_swap.py`` and ``RUNS``), is queued from the page; the output has the planned size (and a
video its frame count); and the panel of each Self-Cascade KSampler and Self-Cascade Upscale shows
the run's per-stage report, stage sizes as planned.

With ``SELFCASCADE_SCREENSHOTS=1`` each test also writes its workflow's thumbnail for the templates
browser (``workflows/<name>.jpg``) and, after the run, a picture of each of this pack's nodes
the first time one appears (``docs/images/<NodeId>.png``).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import av

import pytest
import requests
from harness import ComfyClient, RunResult

from frontend import HOST_FRONTEND, VARIANTS
from tiny_swap import INPUT_VIDEO_FRAMES, SAVE_LATENT_ID, TINY_ADAPTER, TinyRun, to_tiny

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
RUN_TIMEOUT_S = 240
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
PICTURES = REPO / "docs" / "images"
PACK_NODES = {path.stem for path in (REPO / "web" / "docs").glob("*.md")}
PANEL_NODES = ("SelfCascadeKSampler", "SelfCascadeUpscale")
# nodes naming a model or media file, which newer frontends flag when the server lacks the file
FILE_LOADERS = {"CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "VAELoader", "LoraLoader", "ControlNetLoader",
                "LoadImage", "LoadVideo", "SelfCascadeLoadUpsamplerAdapter"}
pictured: set[str] = set()  # node types pictured in this session

RUNS = {
    "sd15_512_to_2048_tuning_free": TinyRun("sd15", base=(64, 64), expect=(256, 256)),  # scale_by 4: two stages
    "sdxl_1024_to_2048_tuning_free": TinyRun("sdxl", base=(64, 64), target=(128, 128), expect=(128, 128)),
    "sdxl_1024_to_4096_tiled_decode": TinyRun("sdxl", base=(64, 64), target=(256, 256), expect=(256, 256)),
    "sdxl_tuned_official_adapter": TinyRun("sdxl", base=(64, 64), target=(128, 128), expect=(128, 128),
                                           adapter=TINY_ADAPTER),
    "hand_built_cascade": TinyRun("sdxl", base=(64, 64), expect=(128, 128), adapter=TINY_ADAPTER),
    "sdxl_lora_controlnet": TinyRun("sdxl", base=(64, 64), target=(128, 128), expect=(128, 128),
                                    why="no tiny LoRA or ControlNet: both bypassed, the rest runs"),
    "flux_tuning_free_pixel_pivot": TinyRun("sd15", base=(64, 64), target=(128, 128), expect=(128, 128),
                                            why="the tiny VAE has SD's 4-channel layout, so the graph runs on the "
                                                "tiny SD1.5 model to exercise its pixel-space pivot"),
    "train_upsampler_adapter": TinyRun("sdxl", base=(64, 64), target=(128, 128), expect=(128, 128), overrides={
        "SelfCascadeTrainUpsamplerAdapter": {"resolution": 128, "steps": 2, "save_name": "browser_trained", "overwrite": True}},
        why="trains 2 steps on the test server's input/upsampler_training images"),
    "self_cascade_demo": TinyRun(None, base=(32, 32), expect=(128, 128), why="the shipped demo model runs as is"),
    "self_cascade_demo_flow": TinyRun(None, base=(32, 32), expect=(128, 128), why="the flow demo model runs as is"),
    "wan21_video_tuning_free": TinyRun("wan", base=(64, 64), target=(128, 128), expect=(128, 128), latent_output=True,
                                       overrides={"SelfCascadeKSampler": {"steps": 12}},
                                       why="no tiny Wan VAE: the video latent is saved; 12 steps, as K 0.5 on the "
                                           "SNR axis at shift 8 keeps about a sixth of them"),
    "upscale_existing_image": TinyRun("sdxl", base=(64, 64), expect=(128, 128),
                                      why="Load Image opens the 64x64 example.png the tests put in the input folder"),
    "upscale_video_frames": TinyRun("wan", base=(32, 32), expect=(64, 64),
                                    why="Load Video opens a 6-frame 32x32 clip the tests put in the input folder"),
}


def wait_for_history(client: ComfyClient, prompt_id: str) -> RunResult:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        entry = client.get("/history").json().get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)[:3000]
            return RunResult(prompt_id, entry["outputs"], client)
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish within {RUN_TIMEOUT_S} s")


def video_frames(result: RunResult, node_id: str) -> list:
    """The frames of the video a Save Video node wrote, decoded."""
    with av.open(io.BytesIO(result.client.view(result.files(node_id, "images")[0]))) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def output_size(result: RunResult, tiny: dict) -> tuple[int, int]:
    if SAVE_LATENT_ID in tiny:
        latent = result.latent(SAVE_LATENT_ID)
        return latent.shape[-1] * 8, latent.shape[-2] * 8
    video = next((node_id for node_id, node in tiny.items() if node["class_type"] == "SaveVideo"), None)
    if video is not None:
        frames = video_frames(result, video)
        assert len(frames) == INPUT_VIDEO_FRAMES, "the upscaled clip lost or gained frames"
        return frames[0].shape[1], frames[0].shape[0]
    save = next(node_id for node_id, node in tiny.items() if node["class_type"] == "SaveImage")
    return result.images(save)[0].size


def planned_stage_lines(url: str, sampler: dict, base: tuple[int, int], expect: tuple[int, int]) -> list[str]:
    """The stage sizes the plan route gives for the sampler's (tiny) settings, as the report writes them."""
    upscale = sampler["class_type"] == "SelfCascadeUpscale"
    settings = {name: sampler["inputs"][name] for name in ("scale_by", "target_width", "target_height", "steps",
                                                           "scheduler", "k", "later_k", "stage_steps")}
    for name, side in (("target_width", expect[0]), ("target_height", expect[1])):
        if isinstance(settings[name], list):  # linked to a Self-Cascade Base Latent: the run's final size
            settings[name] = side
    answer = requests.get(f"{url}/selfcascade/plan", params={**settings, "base_width": base[0], "base_height": base[1],
                                                             "upscale": int(upscale)}, timeout=30).json()
    first = "input" if upscale else "base"
    return [f"{first if i == 0 else f'stage {i}'}: {s['width']}x{s['height']}" for i, s in enumerate(answer["stages"])]


def take_pictures(page, name: str, workflow: dict) -> None:
    page.helper("frame", [])
    everything = page.helper("screenRect", [n["id"] for n in workflow["nodes"]])
    page.screenshot(REPO / "workflows" / f"{name}.jpg", clip=everything, quality=70)
    for node in workflow["nodes"]:
        if node["type"] in PACK_NODES and node["type"] not in pictured:
            page.helper("frame", [node["id"]])
            page.screenshot(PICTURES / f"{node['type']}.png", clip=page.helper("screenRect", [node["id"]]))
            pictured.add(node["type"])


def test_every_workflow_has_a_tiny_run():
    assert {path.stem for path in WORKFLOWS} == set(RUNS)


def test_api_exports_are_what_the_frontend_exports_now(page):
    """workflows/api/*.json (what the main job queues) cannot drift from their UI workflows."""
    exports = sorted((REPO / "workflows" / "api").glob("*.json"))
    assert exports
    for path in exports:
        page.helper("load", json.loads((REPO / "workflows" / path.name).read_text()), path.name)
        # the display titles (_meta) are the host's node names, which newer hosts rename (0.33: "Canny" is
        # "Detect Edges (Canny)") and the server ignores
        committed = without_titles(json.loads(path.read_text()))
        assert as_committed(without_titles(page.helper("exportPrompt")["output"]), committed) == committed, path.name


def without_titles(prompt: dict) -> dict:
    """An API prompt without the display titles (``_meta``), which frontends localise and the server ignores."""
    return {node_id: {key: value for key, value in node.items() if key != "_meta"} for node_id, node in prompt.items()}


def as_committed(exported: dict, committed: dict) -> dict:
    """``exported`` less the inputs a newer host added to its core nodes (0.33: CreateVideo's bit_depth, SaveVideo's
    format.codec), which ``committed`` (exported on the test host) lacks; this pack's nodes keep every input, so a
    stale export of them still fails."""
    def kept(node_id: str, node: dict) -> dict:
        if node["class_type"].startswith("SelfCascade") or node_id not in committed:
            return node
        return {**node, "inputs": {name: value for name, value in node["inputs"].items()
                                   if name in committed[node_id]["inputs"]}}
    return {node_id: kept(node_id, node) for node_id, node in exported.items()}


@pytest.mark.parametrize("frontend", [variant for variant in VARIANTS if variant != HOST_FRONTEND], indirect=True,
                         ids=lambda variant: variant.id)
def test_every_workflow_opens_and_exports_the_same_prompt_on_other_frontends(page):
    """On the newest frontend and with Nodes 2.0 (the host's classic canvas runs them all below): nothing
    missing, no widget value moved, the same prompt as ``workflows/api``, a plan in every panel. Newer
    frontends flag loaders whose file the server lacks (the test host has no real models); nothing else."""
    for path in WORKFLOWS:
        loaded = page.helper("load", json.loads(path.read_text()), path.name)
        assert loaded["missing"] == [] and loaded["widgetMismatches"] == [] and loaded["nodeErrors"] == [], (path.name, loaded)
        flagged = {entry.split(" #")[0] for entry in loaded["missingFiles"]}
        assert flagged <= FILE_LOADERS, (path.name, loaded["missingFiles"])
        exported = page.helper("exportPrompt")["output"]
        committed = without_titles(json.loads((REPO / "workflows" / "api" / path.name).read_text()))
        assert as_committed(without_titles(exported), committed) == committed, path.name
        for node_id in [node_id for kind in PANEL_NODES for node_id in page.helper("nodeIdsOfType", kind)]:
            deadline = time.monotonic() + 10
            while not (panel := page.helper("widgetValue", node_id, "cascade_plan")).startswith("Plan") \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            assert panel.startswith("Plan"), (path.name, panel)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_workflow_opens_exports_and_runs(page, browser_server, screenshots, path: Path):
    workflow = json.loads(path.read_text())
    loaded = page.helper("load", workflow, path.name)
    assert loaded["missing"] == [] and loaded["nodeErrors"] == [], loaded  # files the server lacks: the tiny swap
    assert {entry.split(" #")[0] for entry in loaded["missingFiles"]} <= FILE_LOADERS, loaded["missingFiles"]
    assert loaded["widgetMismatches"] == [], "\n".join(loaded["widgetMismatches"])

    exported = page.helper("exportPrompt")
    real_nodes = {str(n["id"]): n["type"] for n in workflow["nodes"] if n["type"] not in VIRTUAL_NODES}
    assert {i: n["class_type"] for i, n in exported["output"].items()} == real_nodes

    run = RUNS[path.stem]
    tiny = to_tiny(exported["output"], run)
    prompt_id = page.helper("queue", tiny, exported["workflow"])
    with ComfyClient(browser_server.url) as client:
        result = wait_for_history(client, prompt_id)
        assert output_size(result, tiny) == run.expect

    for sampler_id in [node_id for kind in PANEL_NODES for node_id in page.helper("nodeIdsOfType", kind)]:
        report = result.text(str(sampler_id))
        stages = [line.split(",")[0] for line in report.splitlines() if line.startswith(("base", "input", "stage"))]
        assert stages == planned_stage_lines(browser_server.url, tiny[str(sampler_id)], run.base, run.expect)
        panel = page.evaluate("""async (id) => {
            for (let i = 0; i < 100; i++) {
                const text = window.selfcascadeTest.widgetValue(id, "cascade_plan");
                if (text.includes("Last run:")) return text;
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            return window.selfcascadeTest.widgetValue(id, "cascade_plan");
        }""", sampler_id)
        assert "Last run:" in panel and all(line in panel for line in report.splitlines()), panel

    if screenshots:
        take_pictures(page, path.stem, workflow)
