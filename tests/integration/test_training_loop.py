"""Algorithm 1 on the tiny SD1.5, in-process: the loss falls, only the adapter learns, its file works.

One training run (module fixture) on generated 80x72 images at a 64 px crop. The test pack's
weights (normal 0.02 everywhere, GroupNorm scales too) let almost no signal through the UNet, so
nothing could learn on it; the run re-draws them at the usual fan-in scale first.
"""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from selfcascade.adapters import fileformat, training
from selfcascade.adapters.dataset import TrainingCache
from selfcascade.nodes.cascade_nodes import SelfCascadeKSampler
from tiny_pack.models import build_conditioning, build_model, build_vae

SIZE = 64
STEPS = 16


def write_images(folder, count, size=(80, 72)):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index}.png")
    return folder


def signal_carrying(model):
    """Re-draw the UNet's weights at fan-in scale (norms at 1, biases 0) so features reach the output."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.model.diffusion_model.modules():
            for name, parameter in module.named_parameters(recurse=False):
                if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                    parameter.fill_(1.0 if name == "weight" else 0.0)
                elif parameter.ndim >= 2:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(parameter[0].numel()))
                else:
                    parameter.zero_()
    return model


def make_trainer(model, folder, cache, steps=STEPS, learning_rate=0.1, batch_size=2, conditioning=None):
    settings = training.TrainingSettings(SIZE, SIZE, steps, learning_rate=learning_rate, batch_size=batch_size, seed=3)
    data = training.prepare_data(folder, build_vae(), settings, TrainingCache(cache), "tiny-vae",
                                 conditioning=conditioning or build_conditioning("sd15"))
    adapter = training.fresh_adapter(model, "lite", None, settings)
    return training.Trainer(model, adapter, data, settings, "tiny-sd15")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("training")
    model = signal_carrying(build_model("sd15"))
    weights_before = {name: value.clone() for name, value in model.model.state_dict().items()}
    flags_before = {name: p.requires_grad for name, p in model.model.named_parameters()}
    trainer = make_trainer(model, write_images(root / "images", 3), root / "cache")
    loss_before = trainer.fixed_batch_loss()
    trainer.run()
    loss_after = trainer.fixed_batch_loss()
    saved = trainer.save(root / "adapter.safetensors")
    torch.set_num_threads(threads)
    return dict(model=model, trainer=trainer, weights_before=weights_before, flags_before=flags_before,
                loss_before=loss_before, loss_after=loss_after, saved=saved)


def test_loss_falls(run):
    assert run["loss_after"] < 0.9 * run["loss_before"], (run["loss_before"], run["loss_after"])


def test_only_the_adapter_learns_and_the_base_model_is_bit_identical(run):
    model, trainer = run["model"], run["trainer"]
    after = model.model.state_dict()
    assert after.keys() == run["weights_before"].keys()
    assert all(torch.equal(after[name], value) for name, value in run["weights_before"].items())
    assert all(p.grad is None for p in model.model.parameters())
    assert {name: p.requires_grad for name, p in model.model.named_parameters()} == run["flags_before"]
    optimized = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in trainer.adapter.module.parameters()}
    assert len(trainer.optimizer.state) == len(optimized)


def test_saved_adapter_reloads_with_its_training_record(run):
    loaded = fileformat.load_adapter(run["saved"])
    trained = run["trainer"].adapter.module.state_dict()
    assert all(torch.equal(loaded.module.state_dict()[name], value.cpu()) for name, value in trained.items())
    record = loaded.spec.provenance
    assert (record["steps"], record["resolution"], record["images"], record["k"]) == (str(STEPS), "64x64", "3", "0.7")
    assert record["base_model"] == "tiny-sd15" and math.isfinite(float(record["loss"]))
    assert loaded.spec.k_range == (0.0, 0.7)
    assert training.state_path(run["saved"]).is_file()


def test_trained_adapter_changes_the_cascade_an_untrained_one_does_not(run, one_thread):
    model = run["model"]
    untrained = training.fresh_adapter(model, "lite", None, run["trainer"].settings)
    latent = {"samples": torch.zeros((1, 4, 4, 4))}

    def cascade(adapter=None):
        extra = {} if adapter is None else {"upsampler_adapter": adapter}
        output = SelfCascadeKSampler.execute(model, 1, 4, 3.0, "euler", "normal", build_conditioning("sd15"),
                                             build_conditioning("sd15", seed=1), latent, 2.0, 0, 0, 0.7, 0.0, "bilinear",
                                             0, 1.0, **extra)
        return output.result[0]["samples"]

    plain = cascade()
    assert torch.equal(cascade(untrained), plain)
    assert not torch.allclose(cascade(fileformat.load_adapter(run["saved"])), plain, atol=1e-4)


def test_v_prediction_model_trains(tmp_path, one_thread):
    trainer = make_trainer(build_model("sd20v"), write_images(tmp_path / "images", 2), tmp_path / "cache", steps=2)
    assert math.isfinite(trainer.run())


def test_weights_loaded_in_inference_mode_train_and_stay_identical(tmp_path, one_thread):
    """ComfyUI runs loader nodes under torch.inference_mode: such weights must still train the adapter."""
    with torch.inference_mode():
        model = build_model("sd15")
        conditioning = build_conditioning("sd15")
    before = {name: value.clone() for name, value in model.model.state_dict().items()}
    trainer = make_trainer(model, write_images(tmp_path / "images", 2), tmp_path / "cache", steps=2,
                           conditioning=conditioning)
    trainer.run()
    assert all(torch.equal(model.model.state_dict()[name], value) for name, value in before.items())
    assert any(p.abs().sum() > 0 for p in trainer.adapter.module.parameters())


def test_a_model_without_a_unet_is_refused():
    settings = training.TrainingSettings(SIZE, SIZE, 2)
    with pytest.raises(ValueError, match="need a UNet model .* or a Flux-style transformer; this is a wan model"):
        training.fresh_adapter(build_model("wan"), "lite", None, settings)
    with pytest.raises(ValueError, match="this is a flux transformer: use variant 'dit-lite'"):
        training.fresh_adapter(build_model("flux"), "lite", None, settings)


def memory_kib(field: str) -> int:
    """A ``/proc/self/status`` reading (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def test_training_holds_no_second_copy_of_the_weights(tmp_path, one_thread):
    """Peak resident memory while training grows by adapter + activations, not by the weights again.

    Measured on Linux: VmHWM (peak RSS) is reset to the current RSS by writing 5 to
    /proc/self/clear_refs, then read after ``Trainer.run``. The model is wide and the crop small,
    so its weights (inference tensors, as ComfyUI loads them) dwarf everything training adds.
    """
    with torch.inference_mode():
        model = build_model("sd15", width=192)
    weights_kib = sum(p.numel() * p.element_size() for p in model.model.parameters()) // 1024
    trainer = make_trainer(model, write_images(tmp_path / "images", 1), tmp_path / "cache", steps=2, batch_size=1)
    trainer.fixed_batch_loss()  # a forward pass first, so that the peak below is training's own
    resident = memory_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    trainer.run()
    growth = memory_kib("VmHWM") - resident
    print(f"weights {weights_kib / 1024:.0f} MiB, peak RSS growth while training {growth / 1024:.0f} MiB "
          f"({growth / weights_kib:.2f} of the weights)")
    assert growth < 0.25 * weights_kib
