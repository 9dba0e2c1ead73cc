"""Evidence for Self-Cascade on a model trained here (issue #9): counts and detail at 4x and 16x area.

The demo model (``models/demo``, trained at 32x32 on the disc family) draws N images per method
at 64x64 (4x area) and 128x128 (16x area), a third for each prompted count:

  direct       sampling at the target size from pure noise
  upscale      the native 32x32 sample, bicubic-upscaled
  hires fix    the native sample, upscaled (bilinear), resampled once at denoise 0.5
  cascade      Self-Cascade tuning-free: ``run_cascade`` (pivot re-noised to K = 0.7 per 2x stage)
  cascade + adapter   the same with a lite upsampler adapter per stage, trained by the repo's
               trainer on real renders at that stage's size

Upscale, hires fix and both cascades start from the same native sample (same seed). Metrics are in
``metrics.py``; real renders of the family at the target size are the reference. Writes
``results.md`` (a table like the paper's Table 1), ``results.json`` and ``samples.png``.

    nice -n 19 python benchmarks/evidence/evaluate.py                  # the committed table
    nice -n 19 python benchmarks/evidence/evaluate.py --quick --out /tmp/evidence   # CI plumbing check
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import comfy.sample  # noqa: E402
import comfy.utils  # noqa: E402

from selfcascade.benchmarks.evidence import disc_family, metrics  # noqa: E402
from selfcascade.models.demo import demo_model  # noqa: E402
from selfcascade.sampling.cascade import CascadeSettings, run_cascade, stage_seed  # noqa: E402
from selfcascade.sampling.families import detect_family  # noqa: E402
from selfcascade.sampling.plan import plan_stages  # noqa: E402

HERE = Path(__file__).resolve().parent
DIRECT, UPSCALE, HIRES, CASCADE, ADAPTER = "direct", "upscale", "hires fix", "cascade", "cascade + adapter"
METHOD_LABELS = {DIRECT: "Direct inference", UPSCALE: "Plain upscale (bicubic)", HIRES: "Hires fix (denoise 0.5)",
                 CASCADE: "Self-Cascade, tuning-free", ADAPTER: "Self-Cascade + lite adapter"}
REAL = "real renders"
NATIVE = "native"


@dataclass(frozen=True)
class EvalSettings:
    n: int = 36  # images per method and scale, a third per count
    seed: int = 0
    steps: int = 20
    cfg: float = 2.0  # chosen at the native size on a held-out seed (777); 1.0-3.0 give 0.43-0.53 count fidelity there
    sampler: str = "euler"  # with eps prediction, deterministic DDIM (the paper's sampler)
    scheduler: str = "normal"
    k: float = 0.7  # K
    hires_denoise: float = 0.5
    scales: tuple[int, ...] = (2, 4)  # per side: 4x and 16x area
    adapter_images: int = 96
    adapter_steps: int = 400
    adapter_lr: float = 1e-3  # the lite adapter starts as an exact no-op (zero output scale): the paper's 5e-5 barely moves it
    adapter_batch: int = 2
    with_adapter: bool = True


QUICK = dict(n=3, steps=3, adapter_images=3, adapter_steps=2, adapter_batch=1)


@dataclass
class Row:
    scale: int  # per side; 1 = native
    method: str
    n: int
    count_fidelity: float
    duplication_rate: float
    hf_ratio: Optional[float]
    patch_fd: Optional[float]
    seconds_per_image: Optional[float]
    relative_time: Optional[float] = None
    trained_params: int = 0
    training_steps: int = 0


class Evaluation:
    """The demo model, its prompts and the adapters; ``generate(method, size)`` draws the N images of one row."""

    def __init__(self, settings: EvalSettings, weights: Path = demo_model.WEIGHTS):
        self.settings = settings
        self.model, self.contexts = demo_model.load_weights(weights)
        self.vae = demo_model.pixel_vae()
        self.family = detect_family(self.model)
        self.negative = demo_model.conditioning(self.contexts[0])
        self.adapters: dict[int, object] = {}  # target size of a stage -> adapter

    def prompted_counts(self) -> list[int]:
        return [disc_family.COUNTS[i % len(disc_family.COUNTS)] for i in range(self.settings.n)]

    def _groups(self) -> list[tuple[int, int, int]]:
        """(count, images, seed) per count: images of one count share a prompt and a noise batch."""
        counts = self.prompted_counts()
        return [(c, counts.count(c), self.settings.seed + 100 * c) for c in disc_family.COUNTS if counts.count(c)]

    def _sample(self, count: int, latent: torch.Tensor, seed: int, denoise: float = 1.0) -> torch.Tensor:
        s = self.settings
        noise = comfy.sample.prepare_noise(latent, seed)
        return comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler, s.scheduler,
                                   demo_model.conditioning(self.contexts[count]), self.negative, latent,
                                   denoise=denoise, disable_pbar=True, seed=seed)

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent).movedim(-1, 1)

    @staticmethod
    def _empty(images: int, size: int) -> torch.Tensor:
        return torch.zeros(images, 3, size, size)

    def generate(self, method: str, size: int) -> torch.Tensor:
        """N images (in prompted-count order) by ``method`` at ``size`` x ``size``."""
        by_count = {count: self._generate_group(method, size, count, images, seed)
                    for count, images, seed in self._groups()}
        taken = {count: 0 for count in by_count}
        ordered = []
        for count in self.prompted_counts():
            ordered.append(by_count[count][taken[count]])
            taken[count] += 1
        return torch.stack(ordered)

    def _generate_group(self, method: str, size: int, count: int, images: int, seed: int) -> torch.Tensor:
        native = disc_family.NATIVE_SIZE
        if method in (NATIVE, DIRECT):
            return self._decode(self._sample(count, self._empty(images, size), seed))
        if method in (UPSCALE, HIRES):
            base = self._sample(count, self._empty(images, native), seed)
            if method == UPSCALE:
                return comfy.utils.common_upscale(self._decode(base), size, size, "bicubic", "disabled").clamp(0.0, 1.0)
            upscaled = comfy.utils.common_upscale(base, size, size, "bilinear", "disabled")
            return self._decode(self._sample(count, upscaled, stage_seed(seed, 1), self.settings.hires_denoise))
        return self._decode(self._cascade(count, images, seed, size, with_adapter=method == ADAPTER))

    def _cascade(self, count: int, images: int, seed: int, size: int, with_adapter: bool) -> torch.Tensor:
        s = self.settings
        native = disc_family.NATIVE_SIZE
        plan = plan_stages(native, native, size, size, self.family.size_multiple)
        stage_patch = None
        if with_adapter:
            from selfcascade.adapters.injection import apply_upsampler_adapter

            def stage_patch(stage_model, pivot, index):
                return apply_upsampler_adapter(stage_model, self.adapters[plan.stages[index].width], pivot)
        settings = CascadeSettings(seed, s.steps, s.cfg, s.sampler, s.scheduler, s.k)
        latent, _ = run_cascade(self.model, demo_model.conditioning(self.contexts[count]), self.negative,
                                {"samples": self._empty(images, native)}, plan, self.family, settings,
                                stage_patch=stage_patch, disable_pbar=True)
        return latent["samples"]

    def train_adapters(self, sizes: Sequence[int], log: Callable[[str], None]) -> tuple[int, int]:
        """One lite adapter per stage size (its pivot is half of it); returns (parameters, steps) of each."""
        from selfcascade.benchmarks.evidence.adapter_run import AdapterRecipe, train_adapter

        s = self.settings
        params = 0
        for size in sizes:
            recipe = AdapterRecipe(size, s.adapter_images, s.adapter_steps, s.adapter_lr, s.adapter_batch, s.seed + size)
            started = time.process_time()
            adapter, before, after = train_adapter(self.model, self.contexts, self.vae, recipe)
            self.adapters[size] = adapter
            params = sum(p.numel() for p in adapter.module.parameters())
            log(f"adapter {size // 2}->{size}: {params} parameters, {s.adapter_steps} steps, fixed-batch loss "
                f"{before:.4f} -> {after:.4f}, {time.process_time() - started:.0f} cpu-s")
        return params, s.adapter_steps


def real_renders(counts: Sequence[int], size: int, seed: int) -> torch.Tensor:
    """Real samples of the family at ``size``, from a seed apart from every training seed."""
    return disc_family.render(disc_family.sample_scenes(counts, np.random.default_rng(10_000 + seed)), size)


def score(scale: int, method: str, images: torch.Tensor, counts: Sequence[int], real: Optional[torch.Tensor],
          seconds: Optional[float]) -> Row:
    found = metrics.count_objects(images)
    detail = real is not None and scale > 1
    return Row(scale, method, len(counts), metrics.count_fidelity(found, counts), metrics.duplication_rate(found, counts),
               metrics.high_frequency_ratio(images, real) if detail else None,
               metrics.patch_frechet_distance(images, real) if detail else None,
               seconds / len(counts) if seconds is not None else None)


def evaluate(settings: EvalSettings, log: Callable[[str], None] = print,
             weights: Path = demo_model.WEIGHTS) -> tuple[list[Row], dict[str, torch.Tensor]]:
    """All rows of the table, and the images (for the sample sheet)."""
    evaluation = Evaluation(settings, weights)
    counts = evaluation.prompted_counts()
    native = disc_family.NATIVE_SIZE
    sizes = [native * scale for scale in settings.scales]
    methods = [DIRECT, UPSCALE, HIRES, CASCADE]
    adapter_params = adapter_steps = 0
    if settings.with_adapter:
        adapter_params, adapter_steps = evaluation.train_adapters(sorted({s for t in sizes for s in _stage_sizes(t)}), log)
        methods.append(ADAPTER)

    rows, sheet = [], {}
    started = time.process_time()
    images = evaluation.generate(NATIVE, native)
    rows.append(score(1, NATIVE, images, counts, None, time.process_time() - started))
    sheet[f"{NATIVE} {native}"] = images
    for scale, size in zip(settings.scales, sizes):
        real = real_renders(counts, size, settings.seed)
        rows.append(score(scale, REAL, real_renders(counts, size, settings.seed + 1), counts, real, None))
        sheet[f"{REAL} {size}"] = real
        for method in methods:
            started = time.process_time()
            images = evaluation.generate(method, size)
            row = score(scale, method, images, counts, real, time.process_time() - started)
            if method == ADAPTER:
                row.trained_params, row.training_steps = adapter_params * len(_stage_sizes(size)), adapter_steps
            rows.append(row)
            sheet[f"{method} {size}"] = images
            log(f"{size}x{size} {method}: count fidelity {row.count_fidelity:.2f}, {row.seconds_per_image:.2f} cpu-s/image")
        direct = next(r for r in rows if r.scale == scale and r.method == DIRECT).seconds_per_image
        for row in rows:
            if row.scale == scale and row.seconds_per_image is not None:
                row.relative_time = row.seconds_per_image / direct
    return rows, sheet


def _stage_sizes(size: int) -> list[int]:
    """Sizes of the cascade's high-resolution stages up to ``size`` (each one an adapter)."""
    native = disc_family.NATIVE_SIZE
    return [stage.width for stage in plan_stages(native, native, size, size).stages[1:]]


def _cell(value: Optional[float], digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[Row], settings: EvalSettings, command: str) -> str:
    """Rows grouped by scale, in the layout of the paper's Table 1."""
    native = disc_family.NATIVE_SIZE
    lines = [f"Reproduce: `nice -n 19 python benchmarks/evidence/evaluate.py {command}` "
             f"(demo model: `benchmarks/evidence/train_base_model.py`, log in `models/demo/`).", "",
             f"N = {settings.n} images per row (a third per count 1, 2, 3), seed {settings.seed}, "
             f"{settings.steps} {settings.sampler}/{settings.scheduler} steps, CFG {settings.cfg}, K = {settings.k}, "
             f"hires-fix denoise {settings.hires_denoise}. Time is CPU seconds per image (1 thread) relative to direct "
             "inference at the same size. Detail columns compare with real renders at the target size; "
             "HF ratio: fine-detail power / real's (1 = real), patch FD: Fréchet distance of 8x8 patches (x1000). "
             "Both count disc edges as detail too, so many small discs (direct inference) score better on them than "
             "a right count with no texture; real detail is the background texture, which no 32x32 sample holds. "
             "An object is any saturated blob of at least 8 pixels, small duplicates included.", ""]
    header = ("| Method | #Param trained | Training steps | Infer time | Count fidelity ↑ | Duplication ↓ "
              "| HF ratio (→1) | Patch FD ↓ |")
    rule = "|---|---|---|---|---|---|---|---|"
    native_row = next(r for r in rows if r.scale == 1)
    lines += [f"Base model at its native {native}x{native}: count fidelity {native_row.count_fidelity:.3f}, "
              f"duplication {native_row.duplication_rate:.3f} (bounds every method that starts from it).", ""]
    for scale in settings.scales:
        size = native * scale
        lines += [f"### {scale * scale}x area: {native}² → {size}²", "", header, rule]
        for row in (r for r in rows if r.scale == scale):
            label = "Real renders (independent set)" if row.method == REAL else METHOD_LABELS[row.method]
            params = f"{row.trained_params:,}" if row.trained_params else "0"
            steps = str(row.training_steps) if row.training_steps else "–"
            timing = "–" if row.relative_time is None else f"{row.relative_time:.2f}×"
            lines.append(f"| {label} | {params if row.method != REAL else '–'} | {steps} | {timing} "
                         f"| {row.count_fidelity:.3f} | {row.duplication_rate:.3f} | {_cell(row.hf_ratio, 3)} "
                         f"| {_cell(row.patch_fd, 2)} |")
        lines.append("")
    return "\n".join(lines)


def write_sample_sheet(sheet: dict[str, torch.Tensor], path: Path, per_row: int = 6, tile: int = 128) -> None:
    """One labelled row per (method, size): its first images, nearest-upscaled to ``tile`` px, in a PNG."""
    label_width, gap = 160, 4
    canvas = Image.new("RGB", (label_width + per_row * (tile + gap), len(sheet) * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, images) in enumerate(sheet.items()):
        top = row * (tile + gap)
        draw.text((4, top + tile // 2 - 6), name, fill="black")
        chosen = torch.nn.functional.interpolate(images[:per_row].clamp(0.0, 1.0), size=tile, mode="nearest")
        for column, image in enumerate(chosen):
            pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            canvas.paste(Image.fromarray(pixels), (label_width + column * (tile + gap), top))
    canvas.save(path)


def write_results(rows: list[Row], sheet: dict[str, torch.Tensor], settings: EvalSettings, command: str,
                  out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, settings, command)
    (out / "results.md").write_text(f"# Self-Cascade on the disc family (demo model)\n\n{table}", encoding="utf-8")
    payload = {"command": command, "settings": dataclasses.asdict(settings), "torch": torch.__version__,
               "sample_sheet_rows": list(sheet), "rows": [dataclasses.asdict(r) for r in rows]}
    (out / "results.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    write_sample_sheet(sheet, out / "samples.png")


def parse_args(argv: Sequence[str]) -> tuple[EvalSettings, Path]:
    defaults = EvalSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help=f"images per method and scale (default {defaults.n}; quick {QUICK['n']})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of noise, real renders and adapters")
    parser.add_argument("--steps", type=int, help=f"sampling steps (default {defaults.steps}; quick {QUICK['steps']})")
    parser.add_argument("--adapter-steps", type=int,
                        help=f"adapter training steps (default {defaults.adapter_steps}; quick {QUICK['adapter_steps']})")
    parser.add_argument("--no-adapter", action="store_true", help="leave out the adapter row")
    parser.add_argument("--quick", action="store_true", help="tiny N and steps: checks the plumbing, not the method")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.md, results.json, samples.png")
    args = parser.parse_args(argv)
    settings = EvalSettings(**QUICK) if args.quick else defaults
    overrides = {"n": args.n, "steps": args.steps, "adapter_steps": args.adapter_steps}
    settings = dataclasses.replace(settings, seed=args.seed, with_adapter=not args.no_adapter,
                                   **{k: v for k, v in overrides.items() if v is not None})
    if settings.n < len(disc_family.COUNTS):
        parser.error(f"--n must be at least {len(disc_family.COUNTS)} (one image per count)")
    if args.quick and args.out == HERE:
        parser.error("--quick writes a plumbing check, not the evidence: give --out elsewhere")
    return settings, args.out


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    settings, out = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU seconds comparable between rows, kind to a shared machine
    try:
        rows, sheet = evaluate(settings)
        write_results(rows, sheet, settings, " ".join(argv), out)
    finally:
        torch.set_num_threads(threads)
    print(f"wrote {out / 'results.md'}, results.json, samples.png")


if __name__ == "__main__":
    main()
