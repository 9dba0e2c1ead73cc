"""The web extension in the real frontend: live plan (inside subgraphs too), warning before queueing, in-app help.

The tests marked ``EVERY_FRONTEND`` run on each frontend variant (``frontend.VARIANTS``: the host's
frontend and the newest from the package registry, Nodes 2.0 off and on); the ``page`` fixture fails a
test whose page logged a warning from this pack's script (the frontend's deprecation warnings among
them) or a 404 for one of its files (help pages among them).
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests
from harness import PACK_NAME, ComfyClient

from frontend import EVERY_FRONTEND
from test_workflows import wait_for_history
from tiny_swap import TINY_FLUX_CHECKPOINT, TinyRun, to_tiny

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_node_docs import doc_files, shipped_doc_files  # noqa: E402

PANEL = "cascade_plan"
SD15 = REPO / "workflows" / "sd15_512_to_2048_tuning_free.json"
UNKNOWN_FAMILY = "model family unknown here: planned in multiples of 8 px"


def panel_when(page, node_id: int, shows: str, lacks: str = "\0", timeout_s: float = 10,
               subgraph_node: int | None = None) -> str:
    """The sampler's panel text once it shows ``shows`` and not ``lacks`` (plans are fetched asynchronously);
    ``subgraph_node``: the sampler is node ``node_id`` inside that subgraph node's subgraph."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = (page.helper("widgetValue", node_id, PANEL) if subgraph_node is None
                else page.helper("innerWidgetValue", subgraph_node, node_id, PANEL))
        if shows in text and lacks not in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"the panel never showed {shows!r} without {lacks!r}; it shows:\n{text}")


@EVERY_FRONTEND
def test_plan_follows_the_settings_and_the_latent(page):
    page.helper("load", json.loads(SD15.read_text()), SD15.name)
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    latent = page.helper("nodeIdsOfType", "EmptyLatentImage")[0]
    # the paper's 512 -> 2048 in two stages, 35 of 50 steps below K = 0.7
    plan = panel_when(page, sampler, "stage 2")
    assert "base     512x512  50 steps" in plan
    assert "stage 1  1024x1024  K 0.70  35 steps" in plan and "stage 2  2048x2048  K 0.70  35 steps" in plan
    shown = page.helper("shownPanel", sampler, PANEL)
    assert shown["shown"] and "stage 2" in shown["text"], shown  # on screen, in the node, in either renderer

    page.helper("setWidget", sampler, "scale_by", 2.0)
    panel_when(page, sampler, "stage 1  1024x1024", lacks="stage 2")

    page.helper("setWidget", latent, "width", 768)  # an upstream node: the base follows it
    plan = panel_when(page, sampler, "base     768x512")
    assert "stage 1  1536x1024  K 0.70  35 steps" in plan

    page.helper("setWidget", sampler, "k", 0.5)
    assert "stage 1  1536x1024  K 0.50  25 steps" in panel_when(page, sampler, "K 0.50")

    page.helper("setWidget", sampler, "scale_by", 4.0)
    page.helper("setWidget", sampler, "later_k", 0.3)
    plan = panel_when(page, sampler, "K 0.30")
    assert "stage 1  1536x1024  K 0.50  25 steps" in plan and "stage 2  3072x2048  K 0.30  15 steps" in plan


@EVERY_FRONTEND
def test_upscale_plans_from_the_loaded_image(page):
    """Self-Cascade Upscale's panel: the input is the image Load Image shows (64x64 here), encoded, not sampled."""
    workflow = REPO / "workflows" / "upscale_existing_image.json"
    page.helper("load", json.loads(workflow.read_text()), workflow.name)
    upscale = page.helper("nodeIdsOfType", "SelfCascadeUpscale")[0]
    plan = panel_when(page, upscale, "input    64x64  (encoded)")
    assert "stage 1  128x128  K 0.50  16 steps" in plan and "stage 2" not in plan  # karras: 16 of 30 below K

    page.helper("setWidget", upscale, "scale_by", 4.0)
    plan = panel_when(page, upscale, "stage 2")
    assert "stage 2  256x256  K 0.50  16 steps" in plan
    page.helper("setWidget", upscale, "target_width", 32)
    page.helper("setWidget", upscale, "target_height", 32)
    assert "one pass at the target size" in panel_when(page, upscale, "stage 1  32x32", lacks="stage 2")


@EVERY_FRONTEND
def test_invalid_settings_warn_before_queueing_with_the_planners_message(page, browser_server):
    page.helper("build", {"nodes": [
        {"key": "model", "type": "TinyModelLoader", "widgets": {"family": "sd15"}},
        {"key": "cond", "type": "TinyConditioning", "widgets": {"family": "sd15"}},
        {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 64, "height": 64}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"steps": 2, "target_width": 128},
         "links": {"model": ["model", 0], "positive": ["cond", 0], "negative": ["cond", 0],
                   "latent_image": ["latent", 0]}},
        {"key": "save", "type": "SaveLatent", "links": {"samples": ["sampler", 0]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    message = "set both target_width and target_height, or leave both at 0 to use scale_by."
    assert panel_when(page, sampler, "⚠").endswith(message)

    page.helper("runButton")
    deadline = time.monotonic() + 10
    while not any(message in toast for toast in page.helper("toasts")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(message in toast for toast in page.helper("toasts")), page.helper("toasts")
    # the server refuses to run it with the same message: one planner for both
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        entries = list(requests.get(f"{browser_server.url}/history", timeout=30).json().values())
        errors = [m[1] for e in entries for m in e["status"].get("messages", []) if m[0] == "execution_error"]
        if any(message in error["exception_message"] for error in errors):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the server never reported the planner's error")
    page.evaluate("() => document.querySelectorAll('.p-dialog-close-button').forEach((b) => b.click())")


def test_help_pages_match_the_node_schemas(browser_server):
    current = doc_files(requests.get(f"{browser_server.url}/object_info", timeout=60).json())
    assert current, "no node of this pack in /object_info"
    assert shipped_doc_files() == current, "web/docs is behind the node schemas: run scripts/build_node_docs.py"


@EVERY_FRONTEND
def test_help_is_shown_in_the_app_from_where_the_frontend_looks_first(page, browser_server):
    object_info = requests.get(f"{browser_server.url}/object_info", timeout=60).json()
    page.helper("load", json.loads(SD15.read_text()), SD15.name)
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    help_text = page.evaluate("""async (id) => {
        const { app } = window.comfyAPI.app;
        app.canvas.deselectAll();
        app.canvas.selectNode(app.graph.getNodeById(id));
        app.canvas.setDirty(true, true);
        const find = (selector) => document.querySelector(selector);
        for (let i = 0; i < 100 && !find("[data-testid=info-button]"); i++) await new Promise((r) => setTimeout(r, 100));
        find("[data-testid=info-button]").click();
        for (let i = 0; i < 100; i++) {
            const shown = find(".node-help-content");
            if (shown?.querySelector("table")) return shown.innerText;
            await new Promise((r) => setTimeout(r, 100));
        }
        return find(".node-help-content")?.innerText ?? "";
    }""", sampler)
    info = object_info["SelfCascadeKSampler"]
    assert info["description"] in help_text
    assert info["input"]["required"]["k"][1]["tooltip"] in help_text
    docs = f"/extensions/{PACK_NAME}/docs/"
    asked = [urlparse(url).path for url in page.helper("loadedResources") if urlparse(url).path.startswith(docs)]
    assert asked and set(asked) == {f"{docs}SelfCascadeKSampler/en.md"}, asked  # found at once (a 404 fails the test)
    closed = page.evaluate("""async () => {
        // 1.3x shows help in the node library's side bar, 1.5x in the properties panel
        const panel = document.querySelector("[data-testid=properties-panel]");
        if (panel?.querySelector(".node-help-content")) {
            document.querySelector("button[aria-label='Toggle properties panel']").click();
        } else {
            await window.comfyAPI.app.app.extensionManager.command.execute("Workspace.ToggleSidebarTab.node-library");
        }
        for (let i = 0; i < 50 && document.querySelector(".node-help-content"); i++) {
            await new Promise((r) => setTimeout(r, 100));
        }
        return !document.querySelector(".node-help-content");
    }""")
    assert closed, "the help panel stayed open"


def uncovered_label_point(page, node_id: int, name: str, timeout_s: float = 10) -> dict:
    """Where widget ``name``'s label is on screen, once nothing covers it. A dialog or card the frontend itself
    shows (its masks fade in and out) may pass over it: wait, then press Escape as a user would to close one
    that stays; whatever still covers the label fails the test."""
    deadline = time.monotonic() + timeout_s
    point = page.helper("widgetLabelPoint", node_id, name)
    while point["onTop"] is not None and time.monotonic() < deadline:
        if time.monotonic() > deadline - timeout_s / 2:
            page.press("Escape")
        time.sleep(0.2)
        point = page.helper("widgetLabelPoint", node_id, name)
    assert point["onTop"] is None, f"something covers the {name} label: {point}"
    return point


@EVERY_FRONTEND
def test_inputs_show_their_tooltips_on_hover(page, browser_server):
    info = requests.get(f"{browser_server.url}/object_info", timeout=60).json()["SelfCascadeKSampler"]
    tooltip = info["input"]["required"]["k"][1]["tooltip"]
    page.helper("load", json.loads(SD15.read_text()), SD15.name)
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    panel_when(page, sampler, "stage 2")
    assert not page.helper("showsText", tooltip)
    point = uncovered_label_point(page, sampler, "k")
    page.hover(point["x"] - 4, point["y"])  # arrive, then rest: the frontend shows tooltips after a pause
    page.hover(point["x"], point["y"])
    deadline = time.monotonic() + 10
    while not page.helper("showsText", tooltip) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page.helper("showsText", tooltip), f"no tooltip {tooltip!r} over k"
    page.hover(1, 1)  # away: the tooltip goes


@EVERY_FRONTEND
def test_extension_imports_through_window_comfyapi_and_sets_no_polling_timer(page):
    page.helper("load", json.loads(SD15.read_text()), SD15.name)
    panel_when(page, page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0], "stage 2")
    legacy = [url for url in page.helper("loadedResources") if urlparse(url).path in ("/scripts/app.js", "/scripts/api.js")]
    assert legacy == [], "the extension imports the legacy script shims"
    stacks = page.helper("intervalStacks")
    assert stacks is not None, "the driver's timer recorder is not installed"
    assert [stack for stack in stacks if f"/extensions/{PACK_NAME}/" in stack] == [], "the extension polls with a timer"


@EVERY_FRONTEND
def test_a_sampler_inside_a_subgraph_plans_with_values_from_outside_and_shows_its_run(page, browser_server):
    page.helper("load", json.loads(SD15.read_text()), SD15.name)
    latent = page.helper("nodeIdsOfType", "EmptyLatentImage")[0]
    subgraph = page.helper("toSubgraph", page.helper("nodeIdsOfType", "SelfCascadeKSampler"))
    (sampler,) = page.helper("innerNodeIdsOfType", subgraph, "SelfCascadeKSampler")

    plan = panel_when(page, sampler, "stage 2", subgraph_node=subgraph)  # latent and model come in from outside
    assert "base     512x512  50 steps" in plan and "stage 2  2048x2048  K 0.70  35 steps" in plan

    page.helper("setWidget", latent, "width", 768)  # outside the subgraph
    plan = panel_when(page, sampler, "base     768x512", subgraph_node=subgraph)
    assert "stage 1  1536x1024  K 0.70  35 steps" in plan
    page.helper("setWidget", sampler, "scale_by", 2.0, subgraph)  # inside it
    panel_when(page, sampler, "stage 1  1536x1024", lacks="stage 2", subgraph_node=subgraph)

    exported = page.helper("exportPrompt")
    tiny = to_tiny(exported["output"], TinyRun("sd15", base=(64, 64), expect=(128, 128)))
    assert f"{subgraph}:{sampler}" in tiny  # the frontend flattens the subgraph; ids keep the path
    with ComfyClient(browser_server.url) as client:
        wait_for_history(client, page.helper("queue", tiny, exported["workflow"]))
    report = panel_when(page, sampler, "Last run:", subgraph_node=subgraph, timeout_s=30)
    assert "stage 1: 128x128" in report


@EVERY_FRONTEND
def test_the_model_is_traced_to_its_loader_through_patches_and_subgraphs_and_asked_for_once(page):
    checkpoint = f"family_walk_{uuid.uuid4().hex[:8]}.safetensors"  # unknown to the server: family not known
    page.helper("watchRequests")
    page.helper("build", {"nodes": [
        {"key": "ckpt", "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": checkpoint}},
        {"key": "lora", "type": "LoraLoader", "links": {"model": ["ckpt", "MODEL"], "clip": ["ckpt", "CLIP"]}},
        {"key": "shift", "type": "ModelSamplingSD3", "links": {"model": ["lora", "MODEL"]}},
        {"key": "text", "type": "CLIPTextEncode", "links": {"clip": ["lora", "CLIP"]}},
        {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 1024, "height": 1024}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"steps": 20},
         "links": {"model": ["shift", "MODEL"], "positive": ["text", 0], "negative": ["text", 0],
                   "latent_image": ["latent", 0]}},
    ]})
    outer_ids = {page.helper("nodeIdsOfType", kind)[0] for kind in ("ModelSamplingSD3", "SelfCascadeKSampler")}
    subgraph = page.helper("toSubgraph", sorted(outer_ids))  # the model now reaches the sampler through it
    (sampler,) = page.helper("innerNodeIdsOfType", subgraph, "SelfCascadeKSampler")

    plan = panel_when(page, sampler, UNKNOWN_FAMILY, subgraph_node=subgraph)
    assert "stage 1  2048x2048" in plan
    for steps in (21, 22):
        page.helper("setWidget", sampler, "steps", steps, subgraph)
        panel_when(page, sampler, f"{steps} steps", subgraph_node=subgraph)

    asked = [parse_qs(urlparse(route).query) for route in page.helper("requests")]
    family = [query for route, query in zip(page.helper("requests"), asked) if route.startswith("/selfcascade/family")]
    assert family == [{"loader": ["CheckpointLoaderSimple"], "file": [checkpoint]}], family  # once, cached
    plans = [query for route, query in zip(page.helper("requests"), asked) if route.startswith("/selfcascade/plan")]
    assert plans and all(query["multiple"] == ["8"] for query in plans)


@EVERY_FRONTEND
def test_a_flux_checkpoint_is_planned_in_its_familys_multiple_of_16(page):
    page.helper("watchRequests")
    page.helper("build", {"nodes": [
        {"key": "ckpt", "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_FLUX_CHECKPOINT}},
        {"key": "text", "type": "CLIPTextEncode", "links": {"clip": ["ckpt", "CLIP"]}},
        {"key": "latent", "type": "EmptySD3LatentImage", "widgets": {"width": 512, "height": 512}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"target_width": 1000, "target_height": 1000},
         "links": {"model": ["ckpt", "MODEL"], "positive": ["text", 0], "negative": ["text", 0],
                   "latent_image": ["latent", 0]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    plan = panel_when(page, sampler, "Plan (flux, sizes in multiples of 16 px):")
    assert UNKNOWN_FAMILY not in plan
    assert "stage 1  1008x1008" in plan or "stage 1  992x992" in plan, plan  # 1000 is no multiple of 16
    plans = [parse_qs(urlparse(route).query) for route in page.helper("requests") if route.startswith("/selfcascade/plan")]
    assert plans[-1]["multiple"] == ["16"]
    # the family route's sampling: the tiny flux is read as Flux schnell (shift 1), so the plan is on its schedule
    assert (plans[-1]["sampling"], plans[-1]["shift"]) == (["FLUX"], ["1"]) and "  sigma " in plan


def test_a_shift_node_plans_on_the_models_own_schedule_and_shows_sigma_and_snr(page, browser_server):
    page.helper("watchRequests")
    page.helper("build", {"nodes": [
        {"key": "ckpt", "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": f"shift_{uuid.uuid4().hex[:8]}.sft"}},
        {"key": "shift", "type": "ModelSamplingSD3", "widgets": {"shift": 8.0}, "links": {"model": ["ckpt", "MODEL"]}},
        {"key": "text", "type": "CLIPTextEncode", "links": {"clip": ["ckpt", "CLIP"]}},
        {"key": "latent", "type": "EmptyLatentImage", "widgets": {"width": 512, "height": 512}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"steps": 30, "k_axis": "snr"},
         "links": {"model": ["shift", "MODEL"], "positive": ["text", 0], "negative": ["text", 0],
                   "latent_image": ["latent", 0]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    plan = panel_when(page, sampler, "SNR")
    asked = [parse_qs(urlparse(route).query) for route in page.helper("requests") if route.startswith("/selfcascade/plan")]
    assert asked[-1]["sampling"] == ["FLOW"] and asked[-1]["shift"] == ["8"] and asked[-1]["k_axis"] == ["snr"]
    answer = requests.get(f"{browser_server.url}/selfcascade/plan", params={k: v[0] for k, v in asked[-1].items()},
                          timeout=30).json()
    stage = answer["stages"][1]
    line = next(line for line in plan.splitlines() if line.strip().startswith("stage 1"))
    assert f"{stage['steps']} steps  sigma " in line, plan
    sigma, snr = float(line.split("sigma ")[1].split()[0]), float(line.split("SNR ")[1].split()[0])
    assert abs(sigma - stage["sigma"]) < 0.005 and abs(snr - stage["snr"]) < 0.01 * stage["snr"] + 1e-3
    assert 0.08 < snr < 0.12  # near the paper's 0.090 at K 0.7 at Wan's shift 8 (the percent axis: 0.003)


def test_the_flow_demo_model_is_planned_on_its_patch_size_and_flow_schedule(page):
    """The demo model node's architecture widget picks the family the panel plans with."""
    page.helper("watchRequests")
    page.helper("build", {"nodes": [
        {"key": "demo", "type": "SelfCascadeDemoModel", "widgets": {"architecture": "flow"}},
        {"key": "base", "type": "SelfCascadeBaseLatent", "widgets": {"target_width": 128, "target_height": 128},
         "links": {"model": ["demo", "MODEL"]}},
        {"key": "sampler", "type": "SelfCascadeKSampler", "widgets": {"steps": 20},
         "links": {"model": ["demo", "MODEL"], "positive": ["demo", "positive"], "negative": ["demo", "negative"],
                   "latent_image": ["base", "LATENT"]}},
    ]})
    sampler = page.helper("nodeIdsOfType", "SelfCascadeKSampler")[0]
    plan = panel_when(page, sampler, "Plan (selfcascade-demo-flow, sizes in multiples of 4 px):")
    assert "  sigma " in plan and "SNR" in plan, plan
    asked = [parse_qs(urlparse(route).query) for route in page.helper("requests")]
    family = [query for route, query in zip(page.helper("requests"), asked) if route.startswith("/selfcascade/family")]
    assert family == [{"loader": ["SelfCascadeDemoModel"], "file": ["flow"]}], family
    plans = [query for route, query in zip(page.helper("requests"), asked) if route.startswith("/selfcascade/plan")]
    assert (plans[-1]["multiple"], plans[-1]["sampling"], plans[-1]["shift"]) == (["4"], ["FLOW"], ["3"])
    assert "file" not in plans[-1]  # a built-in model: no file for a memory estimate
