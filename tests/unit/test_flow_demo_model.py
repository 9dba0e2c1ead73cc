"""The flow demo model: built from the host's Flux classes, reproducible from its log, and its evidence plumbing."""
import dataclasses
import json

import pytest
import safetensors
import torch

import comfy.ldm.flux.model
import comfy.model_sampling

from selfcascade.adapters.training import host_training
from selfcascade.benchmarks.evidence import flow_evaluate, train_base_model, train_flow_model
from selfcascade.models.demo import demo_model, flow_demo_model
from selfcascade.sampling.families import detect_family

LOG = flow_demo_model.WEIGHTS.parent / flow_demo_model.LOG_NAME


def test_flow_demo_model_is_a_host_flux_on_flow_sampling_in_its_own_family():
    model, contexts = flow_demo_model.load_weights()
    base = model.model
    assert type(base.diffusion_model) is comfy.ldm.flux.model.Flux and base.diffusion_model.patch_size == 4
    assert isinstance(base.model_sampling, comfy.model_sampling.CONST)
    assert isinstance(base.model_sampling, comfy.model_sampling.ModelSamplingDiscreteFlow)
    assert (base.model_sampling.shift, base.model_sampling.multiplier) == (flow_demo_model.SHIFT, 1.0)
    family = detect_family(model, demo_model.pixel_vae())
    assert (family.name, family.latent_factor, family.size_multiple, family.native_width, family.unet) == \
        ("selfcascade-demo-flow", 1, 4, 32, False)
    assert sorted(contexts) == [0, 1, 2, 3]
    [[context, extras]] = flow_demo_model.conditioning(contexts[2])
    assert torch.equal(context, contexts[2]) and extras["pooled_output"].shape == (1, demo_model.CONTEXT_DIM)


def test_unet_demo_model_is_unchanged_by_the_shared_loader():
    model, _ = demo_model.load_weights()
    assert type(model.model.diffusion_model).__name__ == "UNetModel"
    assert detect_family(model).name == "selfcascade-demo"


def test_training_from_the_seed_reproduces_the_first_logged_losses(one_thread):
    config, rows = train_base_model.read_log(LOG, train_flow_model.FlowTrainConfig)
    logged = []
    train_flow_model.train(config, stop_after=rows[0].step, on_log=logged.append)
    assert logged[0].step == rows[0].step
    assert logged[0].loss == pytest.approx(rows[0].loss, rel=1e-3)


def test_shipped_flow_weights_record_the_logged_training_run():
    config, rows = train_base_model.read_log(LOG, train_flow_model.FlowTrainConfig)
    with safetensors.safe_open(str(flow_demo_model.WEIGHTS), "pt") as handle:
        recorded = json.loads(handle.metadata()["config"])
    assert recorded == dataclasses.asdict(config) and rows[-1].step == config.steps
    assert rows[-1].loss < rows[0].loss / 3


def test_gradients_through_the_hosts_in_place_blocks_are_exact(one_thread):
    """The trainer's saved-tensor snapshots against a central finite difference, in float64."""
    torch.manual_seed(0)
    net = flow_demo_model.build_flow_model().diffusion_model.double().requires_grad_(True)  # 0.33 builds it frozen
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    x, context = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 4, 32, dtype=torch.float64)
    timesteps, pooled = torch.tensor([0.3, 0.8], dtype=torch.float64), flow_demo_model.pooled(context)

    def loss() -> torch.Tensor:
        with host_training():  # newer hosts' fused RoPE has neither autograd nor float64 outside it
            return net(x, timesteps, context=context, y=pooled).square().mean()

    with torch.autograd.graph.saved_tensors_hooks(torch.clone, lambda saved: saved):
        loss().backward()
    parameters = list(net.parameters())
    direction = [torch.randn_like(p) for p in parameters]
    analytic = sum((p.grad * d).sum() for p, d in zip(parameters, direction))
    step = 1e-6
    with torch.no_grad():
        for p, d in zip(parameters, direction):
            p.add_(step * d)
        plus = loss()
        for p, d in zip(parameters, direction):
            p.sub_(2 * step * d)
        minus = loss()
    assert float(analytic) == pytest.approx(float((plus - minus) / (2 * step)), rel=1e-5)


@pytest.mark.slow  # tens of CPU seconds of sampling at toy N and steps
def test_quick_flow_study_writes_k_studies_per_shift_the_decision_and_the_headline(tmp_path):
    flow_evaluate.main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "flow_results.json").read_text())
    study = flow_evaluate.QUICK_STUDY
    assert list(results["k_studies"]) == [f"shift {shift:g}" for shift in study.shifts]
    for tables in results["k_studies"].values():
        keys = [row["method"] for row in tables["k-study-16x"]["rows"]]
        assert keys == ["real", "direct", "cascade-0.3", "cascade-0.7", "cascade-0.7-snr"]
        assert tables["k-study-4x"]["rows"][2]["method"] == "hires-0.3"
    decision = results["decision"]
    assert decision["axis"] in ("percent", "snr") and set(decision["per_shift"]) == set(results["k_studies"])
    tables = {table["name"]: table for table in results["tables"]}
    assert set(tables) == {"native", "native-unet", "main-4x", "main-16x"}
    recipe = results["recipes"]["16x"]["method"]
    assert [row["method"] for row in tables["main-16x"]["rows"]] == \
        ["real", "direct", "upscale", "hires-0.5", "cascade-0.7-snr", recipe]
    assert set(results["upscale"]) == set(results["k_studies"])
    assert {row["k_axis"] for row in results["upscale"]["shift 1"]["rows"] if row["k"]} == {"percent", "snr"}
    assert results["settings"]["demo"] == "flow" and results["training"]["parameters"] > 0
    assert (tmp_path / "flow_samples.png").exists() and "## K study at shift 3" in (tmp_path / "flow_results.md").read_text()
