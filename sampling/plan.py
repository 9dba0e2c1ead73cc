"""Stage planner: from the base size to the target in stages of at most 2x per side.

Pure arithmetic on pixel sizes, no torch, no host. The paper (Self-Cascade, arXiv 2402.10491)
runs R = ceil(log4(target area / base area)) stages of 4x pixels each; the last stage lands
exactly on the target. Intermediate stages keep the target's aspect ratio, so a base latent of a
different aspect is reshaped once, in the first stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .limits import MAX_SIDE

MAX_STAGES = 8  # 4^8 = 65536x the base area; beyond that a plan is surely a typo
PREFERRED_MULTIPLE = 64
_EPS = 1e-9


class PlanError(ValueError):
    """A target that cannot be planned; the message names the problem and the fix."""


@dataclass(frozen=True)
class StageSize:
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class CascadePlan:
    """Stage 0 is the base; every later stage is a high-resolution stage with its own pivot."""

    stages: tuple[StageSize, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def base(self) -> StageSize:
        return self.stages[0]

    @property
    def target(self) -> StageSize:
        return self.stages[-1]

    @property
    def cascade_stages(self) -> int:
        return len(self.stages) - 1


def round_to_multiple(value: float, multiple: int) -> int:
    """Nearest positive multiple of ``multiple``."""
    return max(multiple, int(round(value / multiple)) * multiple)


def round_preferring_64(value: float, multiple: int) -> int:
    """A side that prefers a multiple of 64 (kind to every UNet level) when that is within 4%."""
    preferred = round_to_multiple(value, PREFERRED_MULTIPLE)
    if abs(preferred - value) <= 0.04 * value:
        return preferred
    return round_to_multiple(value, multiple)


def stage_count(base: StageSize, target: StageSize) -> int:
    """R = ceil(log4(area ratio)), raised so that no side grows more than 2x in one stage."""
    area_ratio = target.area / base.area
    if area_ratio <= 1.0 + _EPS:
        return 0
    by_area = math.ceil(math.log(area_ratio, 4) - _EPS)
    by_side = max(math.ceil(math.log2(max(target.width / base.width, target.height / base.height, 1.0)) - _EPS), 0)
    return max(by_area, by_side, 1)


def _sizes_with_target_aspect(base: StageSize, target: StageSize, stages: int, multiple: int) -> list[StageSize]:
    aspect = target.width / target.height
    sizes = []
    for r in range(1, stages):
        area = min(base.area * 4**r, target.area)
        sizes.append(StageSize(round_preferring_64(math.sqrt(area * aspect), multiple),
                               round_preferring_64(math.sqrt(area / aspect), multiple)))
    return sizes + [target]


def _sizes_per_side(base: StageSize, target: StageSize, stages: int, multiple: int) -> list[StageSize]:
    sizes = []
    for r in range(1, stages):
        f = r / stages
        sizes.append(StageSize(round_preferring_64(base.width * (target.width / base.width) ** f, multiple),
                               round_preferring_64(base.height * (target.height / base.height) ** f, multiple)))
    return sizes + [target]


def _at_most_double(sizes: list[StageSize], multiple: int) -> bool:
    # one latent cell of slack per side: rounding may nudge a stage just past exactly 2x
    return all(b.width <= 2 * a.width + multiple and b.height <= 2 * a.height + multiple
               for a, b in zip(sizes, sizes[1:]))


def plan_stages(base_width: int, base_height: int, target_width: int, target_height: int,
                multiple: int = 8, max_side: int = MAX_SIDE, single_pass: bool = False) -> CascadePlan:
    """Plan the cascade from the base size to the target (pixels).

    The target is rounded to ``multiple`` (the model's latent factor) and the plan says so.
    A target at or below the base area plans no high-resolution stage, or with ``single_pass``
    (Self-Cascade Upscale, whose base is an input image) one stage straight to the target, so the
    output has the size asked for. Raises ``PlanError`` before any compute when a size is unusable.
    """
    for name, value in (("base width", base_width), ("base height", base_height),
                        ("target width", target_width), ("target height", target_height)):
        if value <= 0:
            raise PlanError(f"{name} is {value}: sizes must be positive pixel counts; set a width and height of at least {multiple}.")
    base = StageSize(base_width, base_height)
    requested = StageSize(target_width, target_height)
    target = StageSize(round_to_multiple(target_width, multiple), round_to_multiple(target_height, multiple))
    notes = []
    if target != requested:
        notes.append(f"target {requested} is not a multiple of {multiple} px; rounded to {target}")
    if max(target.width, target.height) > max_side:
        raise PlanError(f"target {target} exceeds the {max_side} px side limit; choose a smaller target or scale.")
    stages = stage_count(base, target)
    if stages == 0 and single_pass:
        notes.append(f"target {target} is not larger than the input {base}: one pass at the target size, no cascade")
        return CascadePlan((base, target), tuple(notes))
    if stages == 0:
        notes.append(f"target {target} is not larger than the base {base}: single stage, no cascade")
        return CascadePlan((base,), tuple(notes))
    if stages > MAX_STAGES:
        raise PlanError(f"target {target} needs {stages} stages from base {base} (more than {MAX_STAGES}); "
                        "start from a larger base latent or choose a smaller target.")
    sizes = _sizes_with_target_aspect(base, target, stages, multiple)
    if not _at_most_double([base, *sizes], multiple):
        sizes = _sizes_per_side(base, target, stages, multiple)
        notes.append(f"base aspect {base} differs from the target's; stages morph the aspect side by side")
    return CascadePlan((base, *sizes), tuple(notes))


def target_from_scale(base_width: int, base_height: int, scale: float, multiple: int = 8) -> tuple[int, int]:
    """Target pixel size for a per-side scale factor, rounded to ``multiple``."""
    if not scale > 0:
        raise PlanError(f"scale_by is {scale}: it must be above 0 (2.0 doubles each side).")
    return round_to_multiple(base_width * scale, multiple), round_to_multiple(base_height * scale, multiple)


def plan_from_settings(base_width: int, base_height: int, scale_by: float, target_width: int, target_height: int,
                       multiple: int = 8, max_side: int = MAX_SIDE, single_pass: bool = False) -> CascadePlan:
    """The plan for a sampler's settings: an explicit target (both sides) wins over ``scale_by``.

    The one planner behind the Self-Cascade KSampler, Self-Cascade Upscale (``single_pass``) and the
    web extension's ``/selfcascade/plan``.
    """
    if target_width > 0 and target_height > 0:
        width, height = target_width, target_height
    elif target_width > 0 or target_height > 0:
        raise PlanError("set both target_width and target_height, or leave both at 0 to use scale_by.")
    else:
        width, height = target_from_scale(base_width, base_height, scale_by, multiple)
    return plan_stages(base_width, base_height, width, height, multiple, max_side, single_pass)
