"""Train the demo model (``models/demo``) at 32x32 on the disc family, on CPU, deterministically.

The run is seeded end to end (weights, scenes, timesteps, noise, prompt dropout) and single-
threaded, so the same command reproduces the committed weights and log. Eps prediction on
ComfyUI's default discrete schedule: x_t = (x_0 + sigma_t * eps) / sqrt(sigma_t^2 + 1), exactly
what ``ModelSamplingDiscrete.calculate_input`` feeds the UNet when sampling. The eps-MSE is
weighted min(SNR, 5) / SNR (Min-SNR, Hang et al. 2023): unweighted, the nearly clean steps dominate
the gradient and the model learns composition (how many discs, the background) last.

    nice -n 19 python benchmarks/evidence/train_base_model.py            # ~10 CPU minutes
    nice -n 19 python benchmarks/evidence/train_base_model.py --steps 40 --out /tmp/demo.safetensors
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from selfcascade.adapters.training import host_training  # noqa: E402
from selfcascade.benchmarks.evidence import disc_family  # noqa: E402
from selfcascade.models.demo import demo_model  # noqa: E402

LOG_NAME = "train_log.csv"
LOG_FIELDS = ("step", "loss", "lr", "cpu_seconds")
# openaimodel leaves these at random init; LDM's zero_module starts them at zero so each block starts as identity
_ZERO_INIT_SUFFIXES = (".out_layers.3.weight", ".out_layers.3.bias", ".proj_out.weight", ".proj_out.bias")
_ZERO_INIT_NAMES = ("out.2.weight", "out.2.bias")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 2402  # arXiv 2402.10491
    steps: int = 1800
    batch: int = 16
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.997
    min_snr_gamma: float = 5.0
    uncond_probability: float = 0.15  # prompt dropout, so CFG has an unconditional model
    log_every: int = 20


@dataclass(frozen=True)
class LogRow:
    step: int
    loss: float  # mean Min-SNR-weighted eps-MSE over the steps since the previous row
    lr: float
    cpu_seconds: float


def unet_zero_init(name: str) -> bool:
    """LDM's zero_module: each UNet block's output starts at zero, so the block starts as identity."""
    return name.endswith(_ZERO_INIT_SUFFIXES) or name in _ZERO_INIT_NAMES


def init_weights(net: torch.nn.Module, zero_init: Callable[[str], bool] = unet_zero_init) -> None:
    """PyTorch's default init (``comfy.ops`` layers skip it), then zero for the parameters ``zero_init`` names."""
    for module in net.modules():
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(module, base):
                base.reset_parameters(module)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if zero_init(name):
                parameter.zero_()


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth over the run."""
    if step <= config.warmup:
        return config.lr * step / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def training_batches(config: TrainConfig, contexts: dict[int, torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (clean latents, as the pixel VAE encodes them: [-1, 1], contexts) batches of fresh scenes at the native size."""
    rng = np.random.default_rng(config.seed)
    while True:
        counts = rng.choice(disc_family.COUNTS, size=config.batch)
        images = disc_family.render(disc_family.sample_scenes(counts.tolist(), rng), disc_family.NATIVE_SIZE) * 2.0 - 1.0
        dropped = rng.random(config.batch) < config.uncond_probability
        context = torch.cat([contexts[0 if drop else int(count)] for count, drop in zip(counts, dropped)])
        yield images, context


# the model-specific part of a training step: (model, clean model-space latents, contexts, generator) -> loss
StepLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def fit(config, model, contexts: dict[int, torch.Tensor], step_loss: StepLoss, stop_after: Optional[int] = None,
        on_log: Callable[[LogRow], None] = lambda row: None):
    """The loop both demo models share: fresh scenes, AdamW on ``step_loss``, an EMA of the weights, a log row
    every ``config.log_every`` steps. Seeds its generator from ``config.seed``; returns ``model`` holding the EMA."""
    net = model.diffusion_model.requires_grad_(True)  # newer hosts (0.33) build every diffusion model frozen
    ema = copy.deepcopy(net).requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    net.train()
    window: list[float] = []
    started = time.process_time()
    batches = training_batches(config, contexts)
    for step in range(1, min(config.steps, stop_after or config.steps) + 1):
        latents, context = next(batches)
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with host_training():  # newer hosts' fused kernels have no autograd outside it
            loss = step_loss(model, model.process_latent_in(latents), context, generator)  # into model space
            loss.backward()
        optimizer.step()
        with torch.no_grad():
            for averaged, live in zip(ema.parameters(), net.parameters()):
                averaged.lerp_(live, 1.0 - config.ema_decay)

        window.append(loss.item())
        if step % config.log_every == 0:
            on_log(LogRow(step, sum(window) / len(window), lr, time.process_time() - started))
            window = []
    model.diffusion_model = ema.eval()
    return model


def train(config: TrainConfig, stop_after: Optional[int] = None,
          on_log: Callable[[LogRow], None] = lambda row: None):
    """Train from ``config.seed``; returns (EMA BaseModel, count contexts). ``stop_after`` cuts the run short."""
    torch.manual_seed(config.seed)
    model = demo_model.build_unet_model()
    init_weights(model.diffusion_model)
    contexts = {count: demo_model.count_context(count, config.seed) for count in (0, *demo_model.COUNTS)}
    model_sampling = model.model_sampling

    def eps_loss(model, clean, context, generator):
        timesteps = torch.randint(0, model_sampling.num_timesteps, (config.batch,), generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        sigma = model_sampling.sigmas[timesteps].view(-1, 1, 1, 1)
        model_input = model_sampling.calculate_input(sigma, clean + sigma * noise)
        predicted = model.diffusion_model(model_input, timesteps.float(), context=context)
        weight = (config.min_snr_gamma * sigma.square()).clamp(max=1.0)  # min(SNR, gamma) / SNR, SNR = 1 / sigma^2
        return (weight * (predicted - noise).square()).mean()

    return fit(config, model, contexts, eps_loss, stop_after, on_log), contexts


def read_log(path: Path, config_type: type = TrainConfig) -> tuple[Any, list[LogRow]]:
    """The config (first line, a JSON comment) and the rows of a training log."""
    with open(path, newline="") as handle:
        header = handle.readline()
        config = config_type(**json.loads(header.removeprefix("#").strip()))
        rows = [LogRow(int(r["step"]), float(r["loss"]), float(r["lr"]), float(r["cpu_seconds"]))
                for r in csv.DictReader(handle)]
    return config, rows


def train_and_write(config, train_fn: Callable, out: Path, log_path: Path, save: Callable, trainer: str) -> None:
    """Run ``train_fn(config, on_log=...)``, logging to ``log_path`` (CSV under a JSON config line), and
    ``save(model, contexts, out, metadata)`` what it returns."""
    torch.set_num_threads(1)  # bit-reproducible on CPU, and kind to a shared machine
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", newline="") as handle:
        handle.write("# " + json.dumps(dataclasses.asdict(config)) + "\n")
        writer = csv.writer(handle)
        writer.writerow(LOG_FIELDS)

        def on_log(row: LogRow) -> None:
            writer.writerow([row.step, f"{row.loss:.6f}", f"{row.lr:.6g}", f"{row.cpu_seconds:.1f}"])
            handle.flush()
            print(f"step {row.step:5d}  loss {row.loss:.4f}  lr {row.lr:.2e}  {row.cpu_seconds:.0f} cpu-s", flush=True)

        model, contexts = train_fn(config, on_log=on_log)
    metadata = {"config": json.dumps(dataclasses.asdict(config)), "torch": torch.__version__, "trainer": trainer}
    save(model, contexts, out, metadata)
    print(f"wrote {out} and {log_path}")


def command_line(description: str, defaults, train_function, weights: Path, log_name: str, script: str) -> None:
    """The demo trainers' command line: ``--seed`` and ``--steps`` over ``defaults``, ``--out`` for the weights
    (the log ``log_name`` goes next to them); trains with ``train_function`` and writes both."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--out", type=Path, default=weights, help="weights file; the log goes next to it")
    args = parser.parse_args()
    config = dataclasses.replace(defaults, seed=args.seed, steps=args.steps)
    train_and_write(config, train_function, args.out, args.out.parent / log_name, demo_model.save_weights, script)


def main() -> None:
    command_line(__doc__, TrainConfig(), train, demo_model.WEIGHTS, LOG_NAME, "benchmarks/evidence/train_base_model.py")


if __name__ == "__main__":
    main()
