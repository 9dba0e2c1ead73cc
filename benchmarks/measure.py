"""Timing and peak memory with the same calls on a GPU and on the CPU, and a probe that times every UNet call.

GPU: CUDA events (no host synchronisation inside a timed region) and ``torch.cuda.max_memory_allocated``
(absolute: resident weights included). CPU: ``time.perf_counter`` (CPU kernels run synchronously),
or the process's CPU time where other jobs share the cores (their load then barely moves it), and
the growth of the process's peak resident set over a region (VmHWM, reset through
``/proc/self/clear_refs`` after freed heap memory went back to the system): approximate, it also
counts allocator caching and anything else the process touches.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

import comfy.patcher_extension

Mark = Union[float, "torch.cuda.Event"]
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Stopwatch:
    """Marks on the device's own timeline: CUDA events on a GPU, ``clock`` (wall by default) on the CPU."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter):
        self.cuda = device.type == "cuda"
        self.clock = clock

    def mark(self) -> Mark:
        if not self.cuda:
            return self.clock()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start: Mark, end: Mark) -> float:
        """Time between two marks (waits for the GPU to reach ``end``)."""
        if not self.cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


def _libc_malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, which hands freed heap pages back to the system (None elsewhere)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


_MALLOC_TRIM = _libc_malloc_trim()


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE).group(1))


class PeakMemory:
    """Peak memory of a region: CUDA max allocated (absolute) or peak RSS growth (approximate)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.approximate = not self.cuda
        self.meaning = "CUDA max allocated" if self.cuda else "RSS growth, approx."
        self.label = f"peak {'GiB' if self.cuda else 'MiB'} ({self.meaning})"  # a column header
        self._start = 0

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        gc.collect()
        if _MALLOC_TRIM is not None:  # else memory freed by the last region is reused unseen by this one
            _MALLOC_TRIM(0)
        _CLEAR_REFS.write_text("5")  # Linux: VmHWM := VmRSS
        self._start = _status_kib("VmRSS") * 1024

    def peak_bytes(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return _status_kib("VmHWM") * 1024 - self._start

    def display(self, peak_bytes: int) -> str:
        """The figure in the unit ``label`` names."""
        return f"{peak_bytes / 2**30:.2f}" if self.cuda else f"{peak_bytes / 2**20:.0f}"


@dataclass(frozen=True)
class ProbeReading:
    unet_seconds: float  # sum over every diffusion-model call
    unet_calls: int
    sampler_seconds: tuple[float, ...]  # one per sampler call (one per cascade stage), in order


class SamplingProbe:
    """A clone of a model whose diffusion-model calls and sampler calls are timed.

    Both wrappers are registered first, so they are the outermost: a UNet call's time includes
    whatever other wrappers (an upsampler adapter's pivot pass) run inside it. The sum of UNet
    calls is the floor an arm's wall time cannot go below.
    """

    KEY = "selfcascade_benchmark_probe"

    def __init__(self, model, stopwatch: Stopwatch):
        self.stopwatch = stopwatch
        self.model = model.clone()
        self.model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, self.KEY, self._time_unet)
        self.model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, self.KEY, self._time_sampler)
        self._unet: list[tuple[Mark, Mark]] = []
        self._samplers: list[tuple[Mark, Mark]] = []

    def _time_unet(self, executor, *args, **kwargs):
        start = self.stopwatch.mark()
        output = executor(*args, **kwargs)
        self._unet.append((start, self.stopwatch.mark()))
        return output

    def _time_sampler(self, executor, *args, **kwargs):
        start = self.stopwatch.mark()
        output = executor(*args, **kwargs)
        self._samplers.append((start, self.stopwatch.mark()))
        return output

    def take(self) -> ProbeReading:
        """What was timed since the last ``take`` (then forgotten)."""
        seconds = self.stopwatch.seconds
        reading = ProbeReading(sum(seconds(*pair) for pair in self._unet), len(self._unet),
                               tuple(seconds(*pair) for pair in self._samplers))
        self._unet, self._samplers = [], []
        return reading
