"""Server safety (issue #12), through the real server: one client cannot freeze it, kill it, get a 500
or grow its memory beyond the work it asks for.

Every probe of the issue has a test here; each is followed by a valid prompt that must succeed. Route
probes run while a second client polls ``/system_stats``: no answer of it may take a second. Measured
times and memory are printed to the test output (``report``); the only time bounds asserted are
responsiveness bounds (a poll under 1 s, an interrupt honoured within 5 s on this busy machine).

This module runs its own server (a fresh process for memory readings), with an ``upsampler_training``
folder configured in its extra_model_paths.yaml next to the input folder.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from cascade_graphs import cascade_node, saved_cascade, tiny_inputs
from harness import ComfyClient, ComfyServer, Graph
from hostile_files import declaring_pth
from tiny_pack.images import write_noise_images

REPO = Path(__file__).resolve().parents[2]
POLL_INTERVAL_S = 0.05
SLOWEST_POLL_S = 1.0  # the bound: no other client waits a second
INTERRUPT_WITHIN_S = 5.0  # generous on a shared 2-core machine; the measured value is reported
RULE = "is not a plain file name: use 1 to 100 characters from A-Z, a-z, 0-9, '.', '_' and '-'"


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("upsampler_adapters")


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory) -> Path:
    """A folder configured under ``upsampler_training:`` in the server's extra_model_paths.yaml."""
    return tmp_path_factory.mktemp("upsampler_training")


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory, adapter_folder, training_folder):
    """Overrides the session server for this module (conftest's ``comfy`` client then talks to it)."""
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("comfy-safety"),
                                  model_paths={"upsampler_adapters": str(adapter_folder),
                                               "upsampler_training": str(training_folder)}) as server:
        yield server


@pytest.fixture
def report(capsys):
    """Print a measurement into the test output, also when the test passes."""
    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n[server safety] {line}", end="")
    return write


@pytest.fixture
def then_valid(comfy):
    """After the probe, a valid cascade must still run on the same server."""
    yield
    graph, save = saved_cascade("sd15", prefix="after_probe")
    assert comfy.run(graph).latent(save.id).shape == (1, 4, 16, 16)


class StatsPoller:
    """A second client: polls ``/system_stats`` from its own thread while the block runs."""

    def __init__(self, url: str):
        self.url = url
        self.answer_times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                requests.get(f"{self.url}/system_stats", timeout=60).raise_for_status()
            except requests.RequestException as error:
                self.failures.append(repr(error))
            self.answer_times.append(time.monotonic() - started)
            self._stop.wait(POLL_INTERVAL_S)

    @property
    def slowest(self) -> float:
        return max(self.answer_times)

    def __enter__(self) -> StatsPoller:
        self._thread.start()
        time.sleep(2 * POLL_INTERVAL_S)  # a first answer before the probe
        return self

    def __exit__(self, *exc_info) -> None:
        time.sleep(2 * POLL_INTERVAL_S)  # and one after it
        self._stop.set()
        self._thread.join()

    def check(self) -> str:
        assert not self.failures, self.failures
        assert self.slowest < SLOWEST_POLL_S, f"/system_stats took {self.slowest:.2f} s while the probe ran"
        return f"{len(self.answer_times)} polls of /system_stats, slowest {self.slowest * 1000:.0f} ms"


def get_plan(url: str, query: dict) -> tuple[dict, float]:
    started = time.monotonic()
    response = requests.get(f"{url}/selfcascade/plan", params=query, timeout=60)
    assert response.status_code == 200, response.text
    return response.json(), time.monotonic() - started


def memory_mb(server: ComfyServer, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last ``reset_peak_memory``) of the server, in MiB."""
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{server.pid}/status")


def reset_peak_memory(server: ComfyServer) -> None:
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # Linux: VmHWM restarts from VmRSS


# -- GET /selfcascade/plan ----------------------------------------------------------------------

BASE = {"base_width": "512", "base_height": "512"}


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("query, expected", [
    ({"steps": "10000"}, None),  # the node's own maximum: answered (3.2 s on the event loop before)
    ({**BASE, "steps": "10000", "scheduler": "sgm_uniform", "k": "0.95", "later_k": "0.9", "stage_steps": "9000",
      "scale_by": "4"}, None),  # the heaviest in-range plan: two exact-count searches on 10000-step schedules
    ({"steps": "100000"}, "steps = 100000 is outside its limits; choose 1 to 10000."),
    ({"steps": "1000000"}, "steps = 1000000 is outside its limits; choose 1 to 10000."),
    ({"stage_steps": "10000", "k": "0.01"}, "stage_steps = 10000 below K = 0.01 needs a normal schedule of more "
                                            "than 10000 steps"),
    ({"stage_steps": "1000000000"}, "stage_steps = 1000000000 is outside its limits; choose 0 to 10000."),
    ({**BASE, "multiple": "0"}, "multiple = 0 is outside its limits; choose 1 to 64."),
    ({**BASE, "multiple": "-8"}, "multiple = -8 is outside its limits; choose 1 to 64."),
    ({**BASE, "scale_by": "inf"}, "scale_by = inf is not a finite number; choose 0.0 to 16.0."),
    ({**BASE, "scale_by": "1e308"}, "scale_by = 1e+308 is outside its limits; choose 0.0 to 16.0."),
    ({"steps": "9" * 4000}, "is too long for a number; choose 1 to 10000."),
    ({"k": "1e-300", "stage_steps": "1"}, "k = 1e-300 is outside its limits; choose 0.01 to 1.0."),
    ({"scheduler": "x" * 5000}, "scheduler is 5000 characters long; names have at most 64."),
    ({**BASE, "steps": "10000", "k_axis": "snr", "sampling": "FLOW", "shift": "8", "scale_by": "4", "k": "0.95",
      "later_k": "0.9"}, None),  # the model's own schedule, cut on the snr axis (a bisection per K)
    ({"k_axis": "x" * 5000}, "is not an option; choose one of auto, percent, snr."),
    ({"sampling": "x" * 5000}, "is not an option; choose one of , EPS, V_PREDICTION"),
    ({"sampling": "FLOW", "shift": "1e308"}, "shift = 1e+308 is outside its limits; choose 0.0 to 100.0."),
    ({"sampling": "FLUX", "shift": "5"}, "shift = 5.0 is outside its limits; choose 0.0 to 4.6"),
])
def test_plan_route_probes_answer_without_holding_the_server(comfy, report, query, expected):
    with StatsPoller(comfy.url) as poller:
        answer, seconds = get_plan(comfy.url, query)
    polls = poller.check()
    if expected is None:
        assert "error" not in answer and answer["high_res"], answer
    else:
        assert expected in answer["error"]
    shown = {name: value if len(value) <= 24 else f"<{len(value)} characters>" for name, value in query.items()}
    report(f"plan {shown}: answered in {seconds * 1000:.0f} ms; {polls}")


def test_plan_route_hammered_while_a_prompt_runs(comfy, report):
    queries = [{"steps": str(steps), "k": str(k), **BASE} for steps in (20, 30, 50) for k in (0.5, 0.7)]
    queries += [{"steps": "10000"}, {"stage_steps": "10000", "k": "0.01"}, {"steps": "1" * 4000},
                {"scale_by": "nan", **BASE}, {**BASE, "steps": "10000", "stage_steps": "9000", "k": "0.95"}]
    graph, save = saved_cascade("sd15", prefix="during_hammer", steps=300)
    prompt_id = comfy.queue(graph)
    answered: list[float] = []
    with StatsPoller(comfy.url) as poller, ThreadPoolExecutor(max_workers=4) as clients:
        for answer, seconds in clients.map(lambda query: get_plan(comfy.url, query), queries * 8):
            assert "error" in answer or "high_res" in answer
            answered.append(seconds)
    polls = poller.check()
    assert comfy.wait(prompt_id) is None
    assert comfy.history(prompt_id)["status"]["status_str"] == "success"
    report(f"{len(answered)} plan requests from 4 clients while a 300-step cascade ran: slowest answer "
           f"{max(answered):.2f} s, median {sorted(answered)[len(answered) // 2] * 1000:.0f} ms; {polls}")


# -- Self-Cascade KSampler ----------------------------------------------------------------------

@pytest.mark.usefixtures("then_valid")
def test_unreachable_stage_steps_fail_at_once_with_the_fix(comfy, report):
    graph, _ = saved_cascade("sd15", prefix="never_reached", steps=4, stage_steps=10000, k=0.01)  # 7 minutes before
    started = time.monotonic()
    with ComfyClient(comfy.url, timeout_s=120) as client:
        error = client.expect_execution_error(graph)
    assert error.node_type == "SelfCascadeKSampler"
    assert "needs a normal schedule of more than 10000 steps" in error.message and "lower stage_steps or raise K" \
        in error.message
    report(f"KSampler stage_steps 10000 at K 0.01: refused after {time.monotonic() - started:.2f} s")


@pytest.mark.usefixtures("then_valid")
def test_a_json_nan_that_passes_the_hosts_min_max_is_refused_by_the_limits(comfy):
    graph, _ = saved_cascade("sd15", prefix="never_nan", k=float("nan"))
    body = json.dumps({"prompt": graph.prompt, "client_id": comfy.client_id})  # NaN: what Python's json writes
    response = requests.post(f"{comfy.url}/prompt", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text  # the host's min/max checks pass NaN
    error = comfy.wait(response.json()["prompt_id"])
    assert error is not None and "k = nan is not a finite number; choose 0.01 to 1.0." in error.message


@pytest.mark.usefixtures("then_valid")
def test_a_4000_digit_step_count_in_a_prompt_is_refused_by_validation(comfy):
    graph, _ = saved_cascade("sd15", prefix="never_digits", steps=int("9" * 4000))
    rejected = comfy.expect_validation_error(graph)
    assert "bigger than max of 10000" in str(rejected)


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("delay_s", [0.0, 0.4, 1.2])
def test_interrupt_is_honoured_at_once_in_the_heaviest_in_range_settings(comfy, report, delay_s):
    # two exact-count searches on 10000-step schedules (about 2 s here), then a 10000-step base
    # stage: the node checks for an interrupt before every schedule it computes, so an interrupt
    # sent at its start or during the searches ends it within one schedule's time
    g = Graph()
    sampler = cascade_node(g, *tiny_inputs(g, "sd15"), steps=10000, scheduler="sgm_uniform", k=0.95, later_k=0.9,
                           stage_steps=9000, scale_by=4.0)
    g.node("SaveLatent", samples=sampler, filename_prefix="interrupted_heavy")
    prompt_id = comfy.queue(g)
    interrupted_at, honoured_after = None, None
    for kind, data in comfy.events(prompt_id):
        if kind == "executing" and data.get("node") == sampler.id and interrupted_at is None:
            time.sleep(delay_s)
            interrupted_at = time.monotonic()
            requests.post(f"{comfy.url}/interrupt", json={}, timeout=30).raise_for_status()
        if kind == "execution_interrupted":
            honoured_after = time.monotonic() - interrupted_at
    assert honoured_after is not None and honoured_after < INTERRUPT_WITHIN_S
    report(f"interrupt sent {delay_s:.1f} s after the heaviest in-range KSampler started: honoured after "
           f"{honoured_after:.2f} s")


# -- Train Upsampler Adapter --------------------------------------------------------------------

@pytest.fixture(scope="module")
def training_images(comfy_server) -> str:
    return write_noise_images(comfy_server.workdir / "input" / "safety_images", 2).name


def training_graph(image_folder: str, save_name: str, demo: bool = False, steps: int = 2) -> Graph:
    g = Graph()
    if demo:
        model = g.node("SelfCascadeDemoModel", count=2)
        inputs = dict(model=model.out(0), conditioning=model.out(1), vae=model.out(3))
    else:
        inputs = dict(model=g.node("TinyModelLoader", family="sd15", seed=0), vae=g.node("TinyVAE", seed=0),
                      conditioning=g.node("TinyConditioning", family="sd15", seed=0))
    g.node("SelfCascadeTrainUpsamplerAdapter", **inputs, image_folder=image_folder, resolution=64, steps=steps,
           variant="lite", injection="skip", k=0.7, learning_rate=0.01, batch_size=1, seed=0, save_name=save_name,
           overwrite=True)
    return g


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("save_name", ["nul\x00byte", "new\nline", "x" * 300, "../escape", ".hidden", "a/b", ""])
def test_a_bad_save_name_is_refused_before_any_training(comfy, adapter_folder, save_name):
    # the image folder does not exist either: the name is refused first, before the folder is looked at
    files_before = sorted(adapter_folder.parent.rglob("*"))
    error = comfy.expect_execution_error(training_graph("no_such_folder", save_name))
    assert error.node_type == "SelfCascadeTrainUpsamplerAdapter"
    assert RULE in error.message and "holds no" not in error.message
    assert sorted(adapter_folder.parent.rglob("*")) == files_before


@pytest.mark.usefixtures("then_valid")
@pytest.mark.parametrize("image_folder", [str(REPO / "docs"), "../../../docs", "/etc", "safety_images/../../..",
                                          "new\nline", "C:docs", "x" * 300])
def test_image_folders_outside_the_allowed_ones_are_refused_listing_nothing(comfy, image_folder):
    error = comfy.expect_execution_error(training_graph(image_folder, "never-written"))
    assert "must name a folder inside ComfyUI's input folder" in error.message
    assert not any(path.name in error.message for path in (REPO / "docs").rglob("*") if path.is_file())


@pytest.mark.usefixtures("then_valid")
def test_missing_empty_and_escaping_folders_get_one_answer(comfy, comfy_server):
    input_folder = comfy_server.workdir / "input"
    (input_folder / "empty_folder").mkdir()
    (input_folder / "linked_docs").symlink_to(REPO / "docs", target_is_directory=True)  # a link out of input/
    answers = {}
    for name in ("missing_folder", "empty_folder", "linked_docs"):
        answers[name] = comfy.expect_execution_error(training_graph(name, "never-written")).message
    assert len({message.replace(name, "<name>") for name, message in answers.items()}) == 1
    assert "image folder 'missing_folder' holds no png/jpg/jpeg/webp images" in answers["missing_folder"]


def test_training_reads_a_folder_configured_for_the_pack(comfy, training_folder, adapter_folder):
    (training_folder / "studio_set").mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(training_folder / "studio_set" / "grey.png")
    comfy.run(training_graph("studio_set", "from-configured-folder"))
    assert (adapter_folder / "from-configured-folder.safetensors").is_file()


def test_training_runs_with_the_demo_models_pixel_vae(comfy, training_images, adapter_folder, report):
    started = time.monotonic()
    comfy.run(training_graph(training_images, "demo-trained", demo=True, steps=3))
    assert (adapter_folder / "demo-trained.safetensors").is_file()
    report(f"trained 3 steps with the Demo Model's VAE in {time.monotonic() - started:.1f} s")
    g = Graph()
    demo = g.node("SelfCascadeDemoModel", count=2)
    base = g.node("SelfCascadeBaseLatent", model=demo.out(0), target_width=64, target_height=64, batch_size=1, length=1)
    adapter = g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name="demo-trained.safetensors")
    sampler = g.node("SelfCascadeKSampler", model=demo.out(0), seed=0, steps=4, cfg=2.0, sampler_name="euler",
                     scheduler="normal", positive=demo.out(1), negative=demo.out(2), latent_image=base.out(0),
                     scale_by=2.0, target_width=base.out(1), target_height=base.out(2), k=0.7, later_k=0.0,
                     upscale_method="bilinear", stage_steps=0, denoise=1.0, upsampler_adapter=adapter)
    save = g.node("SaveLatent", samples=sampler, filename_prefix="demo_tuned")
    assert comfy.run(g).latent(save.id).shape == (1, 3, 64, 64)  # the demo model samples pixels


# -- Adapter files ------------------------------------------------------------------------------

@pytest.mark.usefixtures("then_valid")
def test_a_small_pth_declaring_a_gigabyte_is_refused_before_it_is_read(comfy, comfy_server, adapter_folder, report):
    path = declaring_pth(adapter_folder / "declares_1gb.pth", 1 << 30)
    g = Graph()
    adapter = g.node("SelfCascadeLoadUpsamplerAdapter", adapter_name=path.name)
    g.node("SaveLatent", samples=cascade_node(g, *tiny_inputs(g, "sd15"), upsampler_adapter=adapter),
           filename_prefix="never_1gb")
    before = memory_mb(comfy_server, "VmRSS")
    reset_peak_memory(comfy_server)
    error = comfy.expect_execution_error(g)
    peak = memory_mb(comfy_server, "VmHWM")
    assert "declares_1gb.pth" in error.message and "more than the official upsamplers need" in error.message
    assert peak - before < 256, f"the server's memory rose by {peak - before:.0f} MiB"
    report(f"{path.stat().st_size / 1e6:.2f} MB .pth declaring 1 GiB: refused; server memory {before:.0f} MiB "
           f"before, peak {peak:.0f} MiB during")


# -- Load ---------------------------------------------------------------------------------------

def test_twenty_prompts_back_to_back(comfy, comfy_server, report):
    graphs = [saved_cascade("sd15", prefix=f"load_{seed}", seed=1000 + seed) for seed in range(20)]
    comfy.run(graphs[0][0])  # models loaded: the readings compare like with like
    before = memory_mb(comfy_server, "VmRSS")
    prompt_ids = [comfy.queue(graph) for graph, _ in graphs[1:]]
    assert all(comfy.wait(prompt_id) is None for prompt_id in prompt_ids)
    assert all(comfy.history(prompt_id)["status"]["status_str"] == "success" for prompt_id in prompt_ids)
    after = memory_mb(comfy_server, "VmRSS")
    report(f"20 cascade prompts back to back: server memory {before:.0f} MiB after the first, {after:.0f} MiB "
           f"after the last ({after - before:+.0f} MiB)")

