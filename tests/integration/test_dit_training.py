"""Algorithm 1 with a DiT adapter on the tiny Flux, in-process: velocity loss, a few steps, only the adapter learns.

The tiny Flux's normal(0.02) weights let little signal through; the run re-draws them at fan-in scale
first (norm gains at one), as the UNet training test does.
"""
import math

import pytest
import torch

from selfcascade.adapters import fileformat, training
from selfcascade.adapters.dataset import TrainingCache
from selfcascade.adapters.modules import DIT_LITE
from test_training_loop import write_images
from tiny_pack.models import build_conditioning, build_flux_vae, build_model

SIZE = 64  # 8x8 latent cells, 4x4 tokens; the pivot 2x2 tokens
STEPS = 6


def signal_carrying(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.model.diffusion_model.named_parameters():
            if name.endswith(("norm.scale", "norm.weight")):
                parameter.fill_(1.0)
            elif parameter.ndim >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(parameter[0].numel()))
            else:
                parameter.zero_()
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dit-training")
    model = signal_carrying(build_model("flux"))
    weights_before = {name: value.clone() for name, value in model.model.state_dict().items()}
    settings = training.TrainingSettings(SIZE, SIZE, STEPS, learning_rate=0.05, batch_size=2, seed=3)
    data = training.prepare_data(write_images(root / "images", 3), build_flux_vae(), settings,
                                 TrainingCache(root / "cache"), "tiny-flux-vae", conditioning=build_conditioning("flux"))
    trainer = training.Trainer(model, training.fresh_adapter(model, DIT_LITE, None, settings), data, settings,
                               "tiny-flux")
    loss_before = trainer.fixed_batch_loss()
    losses = []
    trainer.run(on_step=lambda report: losses.append(report.loss))
    loss_after = trainer.fixed_batch_loss()
    saved = trainer.save(root / "dit.safetensors")
    torch.set_num_threads(threads)
    return dict(model=model, trainer=trainer, weights_before=weights_before, loss_before=loss_before,
                loss_after=loss_after, losses=losses, saved=saved)


def test_the_loss_is_the_velocity_error_and_falls(run):
    sampling = run["model"].get_model_object("model_sampling")
    sigma = torch.tensor([0.3, 0.8])
    assert torch.allclose(training.output_scale(sampling, sigma, 4).flatten(), -sigma)  # flow: d denoised / d v
    assert len(run["losses"]) == STEPS and all(math.isfinite(loss) for loss in run["losses"])
    assert run["loss_after"] < run["loss_before"], (run["loss_before"], run["loss_after"])


def test_only_the_adapter_learns(run):
    model, trainer = run["model"], run["trainer"]
    after = model.model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in run["weights_before"].items())
    assert all(p.grad is None for p in model.model.parameters())
    assert all(upsampler.scale.abs().sum() > 0 for upsampler in trainer.adapter.module.upsamplers)


def test_the_trained_dit_adapter_reloads_and_resumes(run):
    loaded = fileformat.load_adapter(run["saved"])
    assert loaded.spec.variant == DIT_LITE and loaded.spec.family == "flux"
    assert loaded.spec.provenance["steps"] == str(STEPS) and loaded.spec.provenance["base_model"] == "tiny-flux"
    trained = run["trainer"].adapter.module.state_dict()
    assert all(torch.equal(loaded.module.state_dict()[name], value.cpu()) for name, value in trained.items())
    settings, step = training.checkpoint_progress(run["saved"])
    assert (settings.steps, step) == (STEPS, STEPS)
