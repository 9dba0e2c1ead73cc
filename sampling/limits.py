"""Limits of every setting that reaches the pack over HTTP: one definition for node schemas and routes.

ComfyUI checks a prompt's numbers against the node schema's min and max; a route's query strings
reach our code raw. Both read their bounds here, so the route plans exactly what the node accepts,
and the worst case of the work any value can cause is fixed by these numbers (the longest schedule
ever computed has ``MAX_STEPS`` steps, the largest side ``MAX_SIDE`` pixels, the host's own
``MAX_RESOLUTION``). Arithmetic only: a route can check its query on the server's event loop in
microseconds, before any work.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Mapping, Union

import nodes as host_nodes

MAX_SIDE = host_nodes.MAX_RESOLUTION  # no node of the host makes a larger image side
MAX_STEPS = 10000  # the longest schedule a setting can ask for, as in ComfyUI's own KSampler
MAX_NUMBER_CHARS = 32  # "0.30000000000000004" is 19; longer text is refused before parsing
MAX_NAME_CHARS = 64  # scheduler and sampler names are short identifiers
FILE_NAME_CHARS = 100
FILE_NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{FILE_NAME_CHARS - 1}}}")
FILE_NAME_RULE = (f"1 to {FILE_NAME_CHARS} characters from A-Z, a-z, 0-9, '.', '_' and '-', "
                  "starting with a letter or digit")

Number = Union[int, float]


class InputLimitError(ValueError):
    """A value outside its limits; the message names the setting, the value and the allowed range."""


def _shown(raw: str) -> str:
    return raw if len(raw) <= MAX_NUMBER_CHARS else f"{raw[:12]}... ({len(raw)} characters)"


@dataclass(frozen=True)
class Limit:
    """A number setting: its default and inclusive range; whole numbers when the default is an int."""

    name: str
    default: Number
    low: Number
    high: Number

    @property
    def whole(self) -> bool:
        return isinstance(self.default, int)

    def schema(self) -> dict[str, Number]:
        """``default``, ``min`` and ``max`` for a V3 ``io.Int.Input`` / ``io.Float.Input``."""
        return {"default": self.default, "min": self.low, "max": self.high}

    def _range(self) -> str:
        return f"choose {self.low} to {self.high}"

    def check(self, value: Number) -> Number:
        """``value`` itself when it is a finite number in range (a whole one for whole limits, though a
        linked input may carry it as 512.0); else ``InputLimitError``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputLimitError(f"{self.name} = {value!r} is not a number; {self._range()}.")
        if not math.isfinite(value):
            raise InputLimitError(f"{self.name} = {value} is not a finite number; {self._range()}.")
        if self.whole and not float(value).is_integer():
            raise InputLimitError(f"{self.name} = {value} is not a whole number; {self._range()}.")
        if not self.low <= value <= self.high:
            raise InputLimitError(f"{self.name} = {value} is outside its limits; {self._range()}.")
        return value

    def parse(self, raw: str) -> Number:
        """A query string's value: refused by length before it is parsed, then checked."""
        if len(raw) > MAX_NUMBER_CHARS:
            raise InputLimitError(f"{self.name} = '{_shown(raw)}' is too long for a number; {self._range()}.")
        try:
            value = int(raw) if self.whole else float(raw)
        except ValueError:
            kind = "a whole number" if self.whole else "a number"
            raise InputLimitError(f"{self.name} = '{raw}' is not {kind}; {self._range()}.") from None
        return self.check(value)


@dataclass(frozen=True)
class Name:
    """A short text setting (a scheduler's name): bounded length; what it may be is checked by its user."""

    name: str
    default: str
    max_chars: int = MAX_NAME_CHARS

    def parse(self, raw: str) -> str:
        if len(raw) > self.max_chars:
            raise InputLimitError(f"{self.name} is {len(raw)} characters long; names have at most {self.max_chars}.")
        return raw


@dataclass(frozen=True)
class Choice:
    """A setting with a fixed list of options (a node's combo): anything else is refused naming them."""

    name: str
    default: str
    options: tuple[str, ...]

    def check(self, value: str) -> str:
        if value not in self.options:
            shown = ascii(value[:MAX_NAME_CHARS]) if isinstance(value, str) else repr(value)[:MAX_NAME_CHARS]
            raise InputLimitError(f"{self.name} = {shown} is not an option; choose one of {', '.join(self.options)}.")
        return value

    def parse(self, raw: str) -> str:
        return self.check(raw)


STEPS = Limit("steps", 30, 1, MAX_STEPS)
STAGE_STEPS = Limit("stage_steps", 0, 0, MAX_STEPS)
K = Limit("k", 0.7, 0.01, 1.0)
LATER_K = Limit("later_k", 0.0, 0.0, 1.0)
SCALE_BY = Limit("scale_by", 2.0, 0.0, 16.0)
TARGET_WIDTH = Limit("target_width", 0, 0, MAX_SIDE)
TARGET_HEIGHT = Limit("target_height", 0, 0, MAX_SIDE)
BASE_WIDTH = Limit("base_width", 0, 0, MAX_SIDE)  # the plan route's base; 0: not known in the browser
BASE_HEIGHT = Limit("base_height", 0, 0, MAX_SIDE)
SIZE_MULTIPLE = Limit("multiple", 8, 1, 64)  # a model's pixel-size multiple (8; 16 for 2x2-patch DiTs)
SCHEDULER = Name("scheduler", "normal")
UPSCALE_PLAN = Limit("upscale", 0, 0, 1)  # the plan route: 1 plans for Self-Cascade Upscale (its base is the image)
# what K measures: auto (per model), the scheduler's percent, or the paper's SNR (schedule.K_AXES)
K_AXIS = Choice("k_axis", "auto", ("auto", "percent", "snr"))
# the plan route's model sampling: the host's ModelType name ("": not known, SD's schedule) and its shift
# (0: the model config's own; the host's ModelSamplingSD3 allows 0 to 100)
SAMPLING = Choice("sampling", "", ("", "EPS", "V_PREDICTION", "V_PREDICTION_EDM", "EDM", "V_PREDICTION_CONTINUOUS",
                                   "FLOW", "FLUX"))
SHIFT = Limit("shift", 0.0, 0.0, 100.0)
# ModelSamplingFlux's shift is the log of such a time shift: at most log(100), as far as ModelSamplingSD3 goes
FLUX_SHIFT = Limit("shift", 0.0, 0.0, math.log(SHIFT.high))


def check_sampling(sampling: str, shift: float) -> None:
    """A plan route's shift within its sampling's range (FLUX: the log-scale ``FLUX_SHIFT``)."""
    if sampling == "FLUX":
        FLUX_SHIFT.check(shift)

# the Self-Cascade KSampler's cascade settings, checked again when it runs (a prompt's JSON may carry NaN)
CASCADE = (STEPS, STAGE_STEPS, K, LATER_K, SCALE_BY, TARGET_WIDTH, TARGET_HEIGHT)

# the plan route's memory plan (given a loader and file): the latent's batch and video frames, the VAE passes the
# graph does (pixel pivots; VAE Decode after the node), and a device to plan for in GiB (0: the server's own)
BATCH = Limit("batch", 1, 1, 4096)  # as Empty Latent Image's batch_size
LENGTH = Limit("length", 1, 1, MAX_SIDE)  # video frames, as the host's empty video latents' length
PIXEL_PIVOTS = Limit("pixel_pivots", 0, 0, 1)
FINAL_DECODE = Limit("final_decode", 0, 0, 1)
MEMORY_BUDGET = Limit("memory_budget", 0.0, 0.0, 1e6)
MEMORY_QUERY = (BATCH, LENGTH, PIXEL_PIVOTS, FINAL_DECODE, MEMORY_BUDGET)


def check_values(limits: tuple[Limit, ...], values: Mapping[str, Number]) -> None:
    """Every ``values[limit.name]`` within its limit."""
    for limit in limits:
        limit.check(values[limit.name])


def parse_query(query: Mapping[str, str], fields: tuple[Union[Limit, Name, Choice], ...]) -> dict[str, Union[Number, str]]:
    """``fields`` from a query mapping (absent or empty: the default); other keys are ignored."""
    return {field.name: field.parse(query[field.name]) if query.get(field.name, "") != "" else field.default
            for field in fields}


def check_file_name(name: str, what: str) -> str:
    """``name`` when it is a plain file name by ``FILE_NAME_RULE``; else ``InputLimitError`` stating the rule."""
    if not FILE_NAME_PATTERN.fullmatch(name):
        shown = ascii(name[:FILE_NAME_CHARS]) + ("..." if len(name) > FILE_NAME_CHARS else "")
        raise InputLimitError(f"{what} {shown} is not a plain file name: use {FILE_NAME_RULE}, e.g. 'sd15-2x'.")
    return name
