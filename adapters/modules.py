"""The upsampler modules phi_n and what describes them (``AdapterSpec``): pure torch, no host.

phi_n(h^{r-1}_{n,0}, emb) takes the clean pivot's feature at injection point n, upsamples it x2
and refines it with two time-aware residual blocks; injection adds it to the high-resolution
feature. Two variants:

- ``lite`` (paper design, ~0.09M parameters at SDXL widths): bilinear x2, two bottleneck blocks,
  a per-channel output scale initialised to zero, so an untrained adapter is an exact no-op.
- ``official-sdxl``: the released SDXL modules (``feature_upsampler0..3`` of upsampler_only.pth),
  two LDM ResBlocks each, the first with nearest x2 (145.5M parameters).
- ``dit-lite``: the lite design for Flux-style transformers (issue 22): the pivot's image tokens laid
  out on the pivot's token grid, bilinear to the high-resolution token grid, two LiteBlocks, a zero
  output scale; time-aware through the sinusoidal embedding of the call's timestep (the model's own
  ``vec`` is a tuple of modulations on Flux.2, so it is not a portable input).

Every layer casts its weights to the input's device and dtype at call time, so one stored copy
serves fp32, fp16 and bf16 models and gradients still reach the stored weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

LITE = "lite"
OFFICIAL_SDXL = "official-sdxl"
DIT_LITE = "dit-lite"
VARIANTS = (LITE, OFFICIAL_SDXL)  # UNet variants
DIT_VARIANTS = (DIT_LITE,)
ALL_VARIANTS = VARIANTS + DIT_VARIANTS  # what an adapter file may name; the training node and CLI offer them all
SKIP = "skip"  # paper: add to the skip feature the matching output block consumes
BACKBONE = "backbone"  # official code: add to the encoder path after the block
INJECTIONS = (SKIP, BACKBONE)
DEFAULT_INJECTION = {LITE: SKIP, OFFICIAL_SDXL: BACKBONE, DIT_LITE: BACKBONE}

# a block as the host names it: UNet transformer_options["block"] ("input", 3), ("middle", 0); Flux
# patches_replace["dit"] keys ("double_block", 0), ("single_block", 2)
Point = tuple[str, int]
MIDDLE: Point = ("middle", 0)
UNET_POINT_KINDS = ("input", "middle")
DIT_POINT_KINDS = ("double_block", "single_block")
DIT_MAX_POINTS = 4  # as the UNet variants' four points on SDXL
DIT_TIME_DIM = 256  # width of the sinusoidal timestep embedding (Flux feeds the same width to its time_in)
OFFICIAL_SDXL_POINTS: tuple[Point, ...] = (("input", 3), ("input", 6), ("input", 8), MIDDLE)
LITE_RANK = 4
LITE_TIME_DIM = 16
PAPER_K_RANGE = (0.0, 0.7)  # training t ~ U{1..K}, K = 700 of 1000


@dataclass(frozen=True)
class AdapterSpec:
    """Everything needed to rebuild an adapter and to check it fits a model (stored as file metadata)."""

    variant: str
    family: str  # selfcascade.sampling.families name of the model it was made for
    channels: tuple[int, ...]  # feature width at each point
    emb_dim: int  # width of the UNet's time (+ label) embedding
    injection: str
    points: tuple[Point, ...]
    k_range: tuple[float, float] = PAPER_K_RANGE  # fraction of the time range it was trained on
    rank: int = LITE_RANK  # lite only: bottleneck width
    time_dim: int = LITE_TIME_DIM  # lite only: width of the shared time projection
    provenance: Mapping[str, object] = field(default_factory=dict)

    @property
    def dit(self) -> bool:
        """Made for a Flux-style transformer (else for a UNet)."""
        return self.variant in DIT_VARIANTS

    def summary(self) -> str:
        """A few lines for the UI."""
        points = ", ".join("middle" if p == MIDDLE else f"{p[0].removesuffix('_block')} {p[1]}" for p in self.points)
        lines = [f"{self.variant} upsampler adapter for {self.family}",
                 f"injection: {self.injection} at {points}",
                 f"channels: {', '.join(map(str, self.channels))}; embedding width {self.emb_dim}",
                 f"training range: t in [{self.k_range[0]:g}, {self.k_range[1]:g}] of the time range"]
        lines += [f"{key}: {value}" for key, value in self.provenance.items()]
        return "\n".join(lines)


@dataclass(eq=False)  # identity semantics: the injection caches host objects per adapter
class UpsamplerAdapter:
    spec: AdapterSpec
    module: nn.Module

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass(frozen=True)
class UNetLayout:
    """Where a UNet's resolution levels end, from its own ``unet_config``."""

    points: tuple[Point, ...]
    channels: tuple[int, ...]
    emb_dim: int


def unet_layout(unet_config: Mapping) -> UNetLayout:
    """One point per level (its last input block, downsampler included) plus the middle block.

    SDXL (num_res_blocks 2, channel_mult 1, 2, 4) gives input blocks 3, 6, 8 and the middle.
    """
    channel_mult = list(unet_config["channel_mult"])
    num_res_blocks = unet_config["num_res_blocks"]
    if isinstance(num_res_blocks, int):
        num_res_blocks = [num_res_blocks] * len(channel_mult)
    width = unet_config["model_channels"]
    block, points, channels = 0, [], []  # input block 0 is the stem convolution
    for level, mult in enumerate(channel_mult):
        block += num_res_blocks[level] + (1 if level < len(channel_mult) - 1 else 0)
        points.append(("input", block))
        channels.append(mult * width)
    return UNetLayout((*points, MIDDLE), (*channels, channels[-1]), 4 * width)


@dataclass(frozen=True)
class DiTLayout:
    """Where a Flux-style transformer's adapter features are taken and added, from its own config."""

    points: tuple[Point, ...]
    channels: tuple[int, ...]


def dit_layout(dit_config: Mapping) -> DiTLayout:
    """Up to four points at the ends of equal chunks of the first half of the block stack (double-stream
    blocks, then single-stream blocks): the transformer's counterpart of a UNet's encoder and middle.

    Flux.1 (19 double + 38 single blocks) gives double 6, double 13, single 1, single 9; the pivot
    pass runs those first 29 blocks on a quarter of the tokens.
    """
    blocks = [("double_block", i) for i in range(dit_config["depth"])]
    blocks += [("single_block", i) for i in range(dit_config["depth_single_blocks"])]
    if not blocks:
        raise ValueError("the transformer has no blocks: no place for an upsampler adapter.")
    first_half = blocks[:(len(blocks) + 1) // 2]
    count = min(DIT_MAX_POINTS, len(first_half))
    points = tuple(first_half[(k + 1) * len(first_half) // count - 1] for k in range(count))
    return DiTLayout(points, (dit_config["hidden_size"],) * count)


def _cast(tensor: Optional[torch.Tensor], like: torch.Tensor) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.to(device=like.device, dtype=like.dtype)


class Conv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class ResBlock(nn.Module):
    """The LDM ResBlock of the official upsamplers (openaimodel layout, dropout 0, no scale-shift).

    ``up=True`` upsamples (nearest x2) both h, between SiLU and conv, and the identity skip.
    """

    def __init__(self, channels: int, emb_dim: int, up: bool = False):
        super().__init__()
        self.up = up
        self.in_layers = nn.Sequential(GroupNorm(32, channels), nn.SiLU(), Conv2d(channels, channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), Linear(emb_dim, channels))
        # index 2 is the official Dropout(0): kept as Identity so the out conv stays at index 3
        self.out_layers = nn.Sequential(GroupNorm(32, channels), nn.SiLU(), nn.Identity(),
                                        Conv2d(channels, channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[3].weight)
        nn.init.zeros_(self.out_layers[3].bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.up:
            h = self.in_layers[:-1](x)
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[..., None, None]
        return x + self.out_layers(h)


class OfficialUpsampler(nn.ModuleList):
    """``feature_upsamplerN``: ResBlock(up=True) then ResBlock, state-dict keys ``0.*`` and ``1.*``."""

    def __init__(self, channels: int, emb_dim: int):
        super().__init__([ResBlock(channels, emb_dim, up=True), ResBlock(channels, emb_dim)])

    def forward(self, feature: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self:
            feature = block(feature, emb)
        return feature


class OfficialUpsamplers(nn.Module):
    def __init__(self, channels: tuple[int, ...], emb_dim: int):
        super().__init__()
        self.upsamplers = nn.ModuleList(OfficialUpsampler(c, emb_dim) for c in channels)

    def forward(self, features: list[torch.Tensor], emb: torch.Tensor) -> list[torch.Tensor]:
        return [upsampler(f, emb) for upsampler, f in zip(self.upsamplers, features)]


class LiteBlock(nn.Module):
    """Parameter-free norm, 1x1 C->r (+ time), SiLU, 3x3 r->r, SiLU, 1x1 r->C, residual."""

    def __init__(self, channels: int, rank: int, time_dim: int):
        super().__init__()
        self.groups = math.gcd(32, channels)
        self.reduce = Conv2d(channels, rank, 1)
        self.time = Linear(time_dim, rank)
        self.mix = Conv2d(rank, rank, 3, padding=1)
        self.expand = Conv2d(rank, channels, 1)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.reduce(F.group_norm(x, self.groups)) + self.time(time)[..., None, None]
        h = self.mix(F.silu(h))
        return x + self.expand(F.silu(h))


class LiteUpsampler(nn.Module):
    """Bilinear x2, two LiteBlocks, per-channel output scale (zero at init: an exact no-op)."""

    def __init__(self, channels: int, rank: int, time_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList([LiteBlock(channels, rank, time_dim), LiteBlock(channels, rank, time_dim)])
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(self, feature: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(feature, scale_factor=2, mode="bilinear", align_corners=False)
        for block in self.blocks:
            h = block(h, time)
        return h * _cast(self.scale, h)[:, None, None]


class LiteUpsamplers(nn.Module):
    """All points' LiteUpsamplers; time-awareness from the UNet's emb through one shared projection."""

    def __init__(self, channels: tuple[int, ...], emb_dim: int, rank: int = LITE_RANK, time_dim: int = LITE_TIME_DIM):
        super().__init__()
        self.time_proj = Linear(emb_dim, time_dim)
        self.upsamplers = nn.ModuleList(LiteUpsampler(c, rank, time_dim) for c in channels)

    def forward(self, features: list[torch.Tensor], emb: torch.Tensor) -> list[torch.Tensor]:
        time = F.silu(self.time_proj(F.silu(emb)))
        return [upsampler(f, time) for upsampler, f in zip(self.upsamplers, features)]


def timestep_sinusoid(timesteps: torch.Tensor, dim: int, time_factor: float = 1000.0) -> torch.Tensor:
    """The sinusoidal embedding Flux gives its time_in (cos, then sin), of timesteps in [0, 1]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    angles = time_factor * timesteps.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def tokens_to_grid(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(batch, rows * columns, C) row-major tokens, as Flux lays them out -> (batch, C, rows, columns)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


class DiTUpsampler(nn.Module):
    """Pivot tokens on their grid, bilinear to the high-resolution grid, two LiteBlocks, zero output scale."""

    def __init__(self, channels: int, rank: int, time_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList([LiteBlock(channels, rank, time_dim), LiteBlock(channels, rank, time_dim)])
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(self, tokens: torch.Tensor, time: torch.Tensor, grid: tuple[int, int],
                target: tuple[int, int]) -> torch.Tensor:
        h = F.interpolate(tokens_to_grid(tokens, grid), size=target, mode="bilinear", align_corners=False)
        for block in self.blocks:
            h = block(h, time)
        h = h * _cast(self.scale, h)[:, None, None]
        return h.flatten(2).transpose(1, 2)


class DiTUpsamplers(nn.Module):
    """All points' DiTUpsamplers; time-awareness from the timestep's sinusoid through one shared projection."""

    def __init__(self, channels: tuple[int, ...], emb_dim: int = DIT_TIME_DIM, rank: int = LITE_RANK,
                 time_dim: int = LITE_TIME_DIM):
        super().__init__()
        self.emb_dim = emb_dim
        self.time_proj = Linear(emb_dim, time_dim)
        self.upsamplers = nn.ModuleList(DiTUpsampler(c, rank, time_dim) for c in channels)

    def forward(self, features: list[torch.Tensor], timesteps: torch.Tensor, grid: tuple[int, int],
                target: tuple[int, int]) -> list[torch.Tensor]:
        """``features``: (batch, rows * columns, C) image tokens of the pivot on ``grid``; returns them on ``target``."""
        sinusoid = timestep_sinusoid(timesteps, self.emb_dim).to(features[0].dtype)
        time = F.silu(self.time_proj(sinusoid))
        return [upsampler(f, time, grid, target) for upsampler, f in zip(self.upsamplers, features)]


def build_module(spec: AdapterSpec) -> nn.Module:
    """A freshly initialised module for ``spec`` (build under ``torch.device("meta")`` to only get shapes)."""
    if spec.variant == LITE:
        return LiteUpsamplers(spec.channels, spec.emb_dim, spec.rank, spec.time_dim)
    if spec.variant == OFFICIAL_SDXL:
        return OfficialUpsamplers(spec.channels, spec.emb_dim)
    if spec.variant == DIT_LITE:
        return DiTUpsamplers(spec.channels, spec.emb_dim, spec.rank, spec.time_dim)
    raise ValueError(f"unknown adapter variant '{spec.variant}'; choose one of {', '.join(ALL_VARIANTS)}.")


def is_flux_transformer(model) -> bool:
    """A ComfyUI MODEL whose diffusion model is the host's Flux transformer (Flux.1, Flux.2, the flow demo model),
    by class identity (not a subclass, whose forward may differ)."""
    diffusion_model = model.model.diffusion_model
    return type(diffusion_model).__module__ == "comfy.ldm.flux.model" and type(diffusion_model).__name__ == "Flux"


def new_adapter(model, variant: str = LITE, injection: Optional[str] = None,
                k_range: tuple[float, float] = PAPER_K_RANGE) -> UpsamplerAdapter:
    """A fresh (untrained) adapter shaped for ``model``: a UNet variant for a ComfyUI MODEL with a UNet,
    ``dit-lite`` for one with a Flux-style transformer.

    ``injection`` defaults to the variant's own: ``skip`` for lite (paper), ``backbone`` for
    official-sdxl (released code) and dit-lite (the image tokens after the block).
    """
    # imported here: the package's model-family table, not needed by the standalone file format
    from ..sampling.families import detect_family

    if variant not in ALL_VARIANTS:
        raise ValueError(f"unknown adapter variant '{variant}'; choose one of {', '.join(ALL_VARIANTS)}.")
    injection = injection or DEFAULT_INJECTION[variant]
    if injection not in INJECTIONS:
        raise ValueError(f"unknown injection '{injection}'; choose one of {', '.join(INJECTIONS)}.")
    family = detect_family(model)
    if variant in DIT_VARIANTS:
        if not is_flux_transformer(model):
            raise ValueError(f"the {variant} adapter needs a Flux-style transformer (Flux.1, Flux.2, the flow demo "
                             f"model); this is a {family.name} model: use variant 'lite' for a UNet.")
        if injection != BACKBONE:
            raise ValueError(f"the {variant} adapter adds to the image tokens after its blocks (injection "
                             f"'{BACKBONE}'); '{injection}' is for UNets.")
        layout = dit_layout(model.model.model_config.unet_config)
        spec = AdapterSpec(variant, family.name, layout.channels, DIT_TIME_DIM, injection, layout.points, k_range)
        return UpsamplerAdapter(spec, build_module(spec))
    if is_flux_transformer(model):
        raise ValueError(f"the {variant} adapter is for UNets; this is a {family.name} transformer: use variant "
                         f"'{DIT_LITE}'.")
    if not family.unet:
        raise ValueError(f"upsampler adapters need a UNet model (SD1.x, SD2.x, SDXL) or a Flux-style transformer; "
                         f"this is a {family.name} model.")
    layout = unet_layout(model.model.model_config.unet_config)
    if variant == OFFICIAL_SDXL and (family.name != "sdxl" or layout.points != OFFICIAL_SDXL_POINTS):
        raise ValueError(f"the official-sdxl layout needs an SDXL model; this is a {family.name} model: use variant 'lite'.")
    spec = AdapterSpec(variant, family.name, layout.channels, layout.emb_dim, injection, layout.points, k_range)
    return UpsamplerAdapter(spec, build_module(spec))
