"""Train the flow demo model (``models/demo/flow_demo_model.py``) at 32x32 on the disc family, on CPU.

The loop, the scenes, the prompts, the EMA and the log are ``train_base_model``'s; what differs is
the objective, which is the one the host's model_sampling defines for a FLOW model: x_t =
``noise_scaling(sigma, noise, x_0)`` = (1 - sigma) x_0 + sigma * noise (CONST), and the network's
output is read back by ``calculate_denoised`` as x_0 = x_t - sigma * output, so the target it is
trained to is the velocity noise - x_0 (unweighted MSE, rectified flow's loss).

Sigmas are drawn uniformly from the host's own 1000-entry table at the model's shift
(``ModelSamplingDiscreteFlow.sigmas``, shift 3 as SD3 is loaded): a shifted-uniform law, which is
where a uniform scheduler (simple, normal) puts its steps at that shift, so training effort goes
where sampling spends it, and at shift 3 that is mostly the noisy end, where the count is decided.
(SD3's logit-normal favours the middle instead; at 32x32 the composition is settled by sigma ~0.7.)
Weights start from PyTorch's default init with adaLN-Zero (DiT): every modulation and the final
layer start at zero, so each block starts as identity and the model starts predicting zero.

    nice -n 10 python benchmarks/evidence/train_flow_model.py            # about 68 CPU minutes
    nice -n 10 python benchmarks/evidence/train_flow_model.py --steps 40 --out /tmp/flow.safetensors
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import torch  # noqa: E402

from selfcascade.benchmarks.evidence.train_base_model import LogRow, command_line, fit, init_weights  # noqa: E402
from selfcascade.models.demo import demo_model, flow_demo_model  # noqa: E402

# adaLN-Zero: modulations (shift, scale, gate) and the final projection start at zero
_ZERO_INIT_SUFFIXES = ("_mod.lin.weight", "_mod.lin.bias", "modulation.lin.weight", "modulation.lin.bias",
                       "final_layer.adaLN_modulation.1.weight", "final_layer.adaLN_modulation.1.bias",
                       "final_layer.linear.weight", "final_layer.linear.bias")


@dataclass(frozen=True)
class FlowTrainConfig:
    seed: int = 2402  # arXiv 2402.10491
    steps: int = 70000
    batch: int = 8
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    shift: float = flow_demo_model.SHIFT  # of the sigma table the training draws from
    uncond_probability: float = 0.15  # prompt dropout, so CFG has an unconditional model
    log_every: int = 20


def flow_zero_init(name: str) -> bool:
    return name.endswith(_ZERO_INIT_SUFFIXES)


def train(config: FlowTrainConfig, stop_after: Optional[int] = None,
          on_log: Callable[[LogRow], None] = lambda row: None):
    """Train from ``config.seed``; returns (EMA model, count contexts). ``stop_after`` cuts the run short."""
    torch.manual_seed(config.seed)
    model = flow_demo_model.build_flow_model()
    init_weights(model.diffusion_model, flow_zero_init)
    with torch.no_grad():
        for name, parameter in model.diffusion_model.named_parameters():
            # the QK RMSNorm gains, which comfy.ops leaves uninitialised (ComfyUI 0.33 names them weight)
            if name.endswith(("query_norm.scale", "key_norm.scale", "query_norm.weight", "key_norm.weight")):
                parameter.fill_(1.0)
    contexts = {count: demo_model.count_context(count, config.seed) for count in (0, *demo_model.COUNTS)}
    model_sampling = model.model_sampling
    model_sampling.set_parameters(shift=config.shift, multiplier=1.0)

    def velocity_loss(model, clean, context, generator):
        index = torch.randint(0, len(model_sampling.sigmas), (config.batch,), generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        sigma = model_sampling.sigmas[index]
        noisy = model_sampling.noise_scaling(sigma, noise, clean)
        # the host's blocks add their residuals in place (``img += ...``) into tensors a LayerNorm saved for the
        # backward pass; saving snapshots keeps the gradients exact (checked against finite differences)
        with torch.autograd.graph.saved_tensors_hooks(torch.clone, lambda saved: saved):
            output = model.diffusion_model(model_sampling.calculate_input(sigma, noisy),
                                           model_sampling.timestep(sigma), context=context,
                                           y=flow_demo_model.pooled(context))
        return (output - (noise - clean)).square().mean()  # calculate_denoised(sigma, noise - clean, noisy) == clean

    return fit(config, model, contexts, velocity_loss, stop_after, on_log), contexts


def main() -> None:
    command_line(__doc__, FlowTrainConfig(), train, flow_demo_model.WEIGHTS, flow_demo_model.LOG_NAME,
                 "benchmarks/evidence/train_flow_model.py")


if __name__ == "__main__":
    main()
