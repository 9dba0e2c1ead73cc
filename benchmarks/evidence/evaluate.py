"""Evidence for Self-Cascade on a model trained here: composition and detail at 4x and 16x area, with intervals.

The demo model (``models/demo``, trained at 32x32 on the disc family) draws images at 64x64 (4x
area) and 128x128 (16x area), a third for each prompted count (1, 2, 3 discs), by

  direct       sampling at the target size from pure noise
  upscale      the native 32x32 sample, bicubic-upscaled
  hires fix    the native sample, upscaled (bilinear latent) in one jump, resampled by KSampler at
               denoise 0.5 and at denoise = K (0.7)
  cascade      Self-Cascade tuning-free (``CascadeRun.run``), per 2x stage re-noised to K; K 0.7 is the
               paper's, later stages may have a K of their own (``later_k``)
  + adapter    the cascade at K 0.7 with a lite upsampler adapter per stage, trained with the repo's
               trainer on real renders at that stage's size

Every row except direct starts from the same native sample of the same seed, so rows are compared
image by image (``analysis.py``). Three disjoint seed sets:

  main         the headline rows, N = 240 at 4x and 120 at 16x
  replication  the 16x headline rows again, N = 60: does the ranking hold on other seeds?
  k-study      K in {0.4, 0.5, 0.6, 0.7} at both scales and, at 16x, lower K for the second stage,
               N = 60 each. The recipe (best count fidelity within a time budget relative to direct,
               ``analysis.choose_recipe``) is chosen here and measured as a headline row on the main
               and replication seeds, which it was not chosen on.

Work runs as independent deterministic batches (``generation.py``) on worker processes of one
thread each; CPU seconds per image are the workers' process time, so time ratios hold under
contention. Writes ``results.json`` (everything the README quotes), ``results.md``, ``samples.png``
and ``k_study.png``.

    flock /work/cpu-heavy.lock nice -n 5 python benchmarks/evidence/evaluate.py    # the committed evidence
    python benchmarks/evidence/evaluate.py --quick --out /tmp/evidence             # CI plumbing check
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
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

from selfcascade.benchmarks.evidence import analysis, disc_family, generation, metrics, plot, report  # noqa: E402
from selfcascade.benchmarks.evidence.adapter_run import AdapterRecipe  # noqa: E402
from selfcascade.benchmarks.evidence.generation import (CASCADE, DIRECT, HIRES, NATIVE, UPSCALE, AdapterRecord,  # noqa: E402
                                                        Batch, BatchResult, Method, Sampling)
from selfcascade.sampling.plan import plan_stages  # noqa: E402

HERE = Path(__file__).resolve().parent
NATIVE_SIZE = disc_family.NATIVE_SIZE
SHEET_PER_COUNT = 2  # sample-sheet images per prompted count


@dataclass(frozen=True)
class EvalSettings:
    main_n: tuple[int, int] = (240, 120)  # images per headline row at 4x and 16x area, a third per count
    replication_n: int = 60  # 16x headline rows on disjoint seeds
    k_study_n: int = 60  # per K-study row, both scales
    reference_n: int = 240  # real renders the detail metrics compare with, per size
    batch: int = 20  # images per task (one noise batch)
    seed: int = 0
    steps: int = 20
    cfg: float = 2.0  # chosen at the native size on a held-out seed (777); 1.0-3.0 give 0.43-0.53 count fidelity there
    sampler: str = "euler"  # with eps prediction, deterministic DDIM (the paper's sampler)
    scheduler: str = "normal"
    k: float = 0.7  # the paper's K
    hires_denoise: tuple[float, ...] = (0.5, 0.7)  # 0.5: a common hires fix; 0.7: the same cut as K
    k_study: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7)
    k_study_later: tuple[tuple[float, float], ...] = ((0.7, 0.5), (0.7, 0.4), (0.7, 0.3))  # (K, later K), 16x
    time_budget: tuple[float, float] = (0.8, 0.6)  # time relative to direct the recipe must stay within, 4x and 16x
    adapter_images: int = 96
    adapter_steps: int = 400
    adapter_lr: float = 1e-3  # lr x steps as the paper's 5e-5 x 8k: the lite adapter starts as an exact no-op
    adapter_batch: int = 2
    adapter_k: float = 0.7  # the trainer's K: t drawn up to it (the paper's, the cascade's K)
    adapter_variant: str = "lite"  # dit-lite on the flow demo model
    with_adapter: bool = True
    workers: int = 2
    bootstrap_resamples: int = 2000
    demo: str = "unet"  # the demo model measured: a key of generation.DEMO_MODELS
    shift: float = 0.0  # flow models: the sampling shift (0: the model's own)

    @property
    def scales(self) -> tuple[int, int]:
        return (2, 4)  # per side: 4x and 16x area

    def sampling(self) -> Sampling:
        return Sampling(self.steps, self.cfg, self.sampler, self.scheduler, self.shift)


QUICK = dict(main_n=(3, 3), replication_n=3, k_study_n=3, reference_n=6, batch=2, steps=4, k_study=(0.5, 0.7),
             k_study_later=((0.7, 0.5),), adapter_images=3, adapter_steps=2, adapter_batch=1, workers=1,
             bootstrap_resamples=50)
SEED_SETS = {"main": 0, "replication": 100_000, "k-study": 200_000}  # offsets: the sets never share a noise seed
REAL_SEED, REFERENCE_SEED = 10_000, 20_000  # real renders: the independent row, and the reference for detail


@dataclass(frozen=True)
class TableSpec:
    name: str
    seed_set: str
    scale: int  # per side; 1 = the native size
    n: int
    keys: tuple[str, ...]  # rows every other row is compared with

    @property
    def size(self) -> int:
        return NATIVE_SIZE * self.scale

    def prompted(self) -> list[int]:
        return [count for count in disc_family.COUNTS for _ in range(self.n // len(disc_family.COUNTS))]


def headline_methods(settings: EvalSettings) -> list[Method]:
    """The headline rows before the recipe is known."""
    methods = [Method(DIRECT), Method(UPSCALE), *(Method(HIRES, denoise=d) for d in settings.hires_denoise),
               Method(CASCADE, k=settings.k)]
    return methods + ([Method(CASCADE, k=settings.k, adapter=True)] if settings.with_adapter else [])


def k_study_methods(settings: EvalSettings, scale: int) -> list[Method]:
    methods = [Method(CASCADE, k=k) for k in settings.k_study]
    if len(plan_stages(NATIVE_SIZE, NATIVE_SIZE, NATIVE_SIZE * scale, NATIVE_SIZE * scale).stages) > 2:
        methods += [Method(CASCADE, k=k, later_k=later) for k, later in settings.k_study_later]
    return methods


def table_specs(settings: EvalSettings) -> list[TableSpec]:
    paper = Method(CASCADE, k=settings.k).key
    keys = tuple(Method(HIRES, denoise=d).key for d in settings.hires_denoise) + (paper,)
    (n_4x, n_16x), (scale_4x, scale_16x) = settings.main_n, settings.scales
    return [TableSpec("native", "main", 1, n_4x, ()),
            TableSpec("main-4x", "main", scale_4x, n_4x, keys), TableSpec("main-16x", "main", scale_16x, n_16x, keys),
            TableSpec("replication-16x", "replication", scale_16x, settings.replication_n, keys),
            TableSpec("k-study-4x", "k-study", scale_4x, settings.k_study_n, (paper,)),
            TableSpec("k-study-16x", "k-study", scale_16x, settings.k_study_n, (paper,))]


def batches(spec: TableSpec, method: Method, settings: EvalSettings, adapters: dict[int, str]) -> list[Batch]:
    """The tasks of one row, in the table's image order (count by count); batch b of count c has
    seed ``set offset + seed + 1000 c + 10 b`` (the cascade's stage r adds r), the same in every row."""
    per_count = spec.n // len(disc_family.COUNTS)
    stage_adapters = tuple(sorted(adapters.items())) if method.adapter else ()
    keep = SHEET_PER_COUNT if spec.seed_set == "main" else 0
    out = []
    for count in disc_family.COUNTS:
        for index, first in enumerate(range(0, per_count, settings.batch)):
            seed = SEED_SETS[spec.seed_set] + settings.seed + 1000 * count + 10 * index
            out.append(Batch(method, spec.size, count, min(settings.batch, per_count - first), seed, settings.sampling(),
                             stage_adapters, keep if index == 0 else 0, settings.demo))
    return out


class InlineExecutor(concurrent.futures.Executor):
    """Runs each task when submitted, in this process (quick mode and tests)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to the caller through the future, as a pool would
            future.set_exception(error)
        return future


def executor_for(workers: int) -> concurrent.futures.Executor:
    if workers <= 1:
        return InlineExecutor()
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=bootstrap)


@dataclass
class Row:
    """A row's batches as they come back."""

    spec: TableSpec
    method: Method
    results: list[Optional[BatchResult]]

    @property
    def done(self) -> bool:
        return all(result is not None for result in self.results)

    def measurements(self) -> analysis.RowMeasurements:
        results = [result for result in self.results if result is not None]
        steps = {result.stage_steps for result in results}
        if len(steps) != 1:
            raise RuntimeError(f"{self.spec.name} {self.method.key}: batches ran different steps {steps}")
        return analysis.RowMeasurements(
            self.method.key, self.method.label, [f for r in results for f in r.found],
            np.concatenate([r.hf_powers for r in results]), _concat_moments([r.moments for r in results]),
            sum(r.cpu_seconds for r in results), steps.pop())

    def samples(self) -> Optional[torch.Tensor]:
        kept = [r.samples for r in self.results if r is not None and r.samples is not None]
        return torch.cat(kept) if kept else None


def _concat_moments(parts: list[metrics.PatchMoments]) -> metrics.PatchMoments:
    return metrics.PatchMoments(*(np.concatenate([getattr(p, field.name) for p in parts])
                                  for field in dataclasses.fields(metrics.PatchMoments)))


class Evaluation:
    """Schedules every row's batches on the workers; the recipe rows once the K study has chosen them."""

    def __init__(self, settings: EvalSettings, executor: concurrent.futures.Executor, work: Path,
                 log: Callable[[str], None]):
        self.settings, self.executor, self.work, self.log = settings, executor, work, log
        self.specs = {spec.name: spec for spec in table_specs(settings)}
        self.rows: dict[tuple[str, str], Row] = {}
        self.pending: dict[concurrent.futures.Future, tuple] = {}
        self.adapters: dict[int, str] = {}
        self.adapter_records: list[AdapterRecord] = []
        self.recipes: dict[int, dict] = {}
        self.k_tables: dict[int, dict] = {}

    def submit_row(self, spec: TableSpec, method: Method) -> None:
        if (spec.name, method.key) in self.rows:
            return
        tasks = batches(spec, method, self.settings, self.adapters)
        self.rows[(spec.name, method.key)] = Row(spec, method, [None] * len(tasks))
        for index, task in enumerate(tasks):
            self.pending[self.executor.submit(generation.run_batch, task)] = ("batch", spec.name, method.key, index)

    def submit_training(self) -> None:
        s = self.settings
        for size in sorted({stage for scale in s.scales for stage in stage_sizes(NATIVE_SIZE * scale)}):
            recipe = AdapterRecipe(size, s.adapter_images, s.adapter_steps, s.adapter_lr, s.adapter_batch, s.seed + size,
                                   s.adapter_k, s.adapter_variant)
            task = generation.AdapterTraining(recipe, str(self.work / f"{s.adapter_variant}_{size}px.safetensors"), s.demo)
            self.pending[self.executor.submit(generation.run_training, task)] = ("training", size, task.path)

    def run(self) -> None:
        s, specs = self.settings, self.specs
        for scale in s.scales:  # what the recipe's choice waits for comes first
            for method in k_study_methods(s, scale):
                self.submit_row(specs[f"k-study-{area(scale)}"], method)
            self.submit_row(specs[f"main-{area(scale)}"], Method(DIRECT))
        if s.with_adapter:
            self.submit_training()
        self.submit_row(specs["native"], Method(NATIVE))
        for spec in (specs["main-4x"], specs["main-16x"], specs["replication-16x"]):
            for method in headline_methods(s):
                if not method.adapter:
                    self.submit_row(spec, method)
        drain([self], self._submit_what_is_ready)

    def _receive(self, task: tuple, result) -> None:
        if task[0] == "training":
            _, size, path = task
            self.adapters[size] = path
            self.adapter_records.append(result)
            self.log(f"adapter {size // 2}->{size}: {result.parameters} parameters, {result.steps} steps, loss "
                     f"{result.loss_before:.4f} -> {result.loss_after:.4f}, {result.cpu_seconds:.0f} cpu-s")
            return
        _, name, key, index = task
        row = self.rows[(name, key)]
        row.results[index] = result
        if row.done:
            seconds = sum(r.cpu_seconds for r in row.results) / row.spec.n
            self.log(f"{name} {key}: {seconds:.2f} cpu-s/image")

    def _submit_what_is_ready(self) -> None:
        s = self.settings
        for scale, budget in zip(s.scales, s.time_budget):
            study = [row for (name, _), row in self.rows.items() if name == f"k-study-{area(scale)}"]
            direct = self.rows[(f"main-{area(scale)}", DIRECT)]
            if scale in self.recipes or not direct.done or not all(row.done for row in study):
                continue
            self.k_tables[scale] = self.table(self.specs[f"k-study-{area(scale)}"], study)
            self.recipes[scale] = analysis.choose_recipe(self.k_tables[scale], budget)
            chosen = next(row.method for row in study if row.method.key == self.recipes[scale]["method"])
            self.log(f"recipe at {area(scale)}: {chosen.key} (within budget {budget}: {self.recipes[scale]['within_budget']})")
            for name in (f"main-{area(scale)}", "replication-16x" if area(scale) == "16x" else None):
                if name:
                    self.submit_row(self.specs[name], chosen)
        trained = all(size in self.adapters for scale in s.scales for size in stage_sizes(NATIVE_SIZE * scale))
        if s.with_adapter and trained:
            for name in ("main-4x", "main-16x", "replication-16x"):
                self.submit_row(self.specs[name], Method(CASCADE, k=s.k, adapter=True))

    def direct_seconds(self, spec: TableSpec) -> float:
        """Direct inference's CPU seconds per image at this size: this seed set's, else the main set's."""
        row = self.rows.get((spec.name, DIRECT)) or self.rows[(f"main-{area(spec.scale)}", DIRECT)]
        return sum(r.cpu_seconds for r in row.results) / row.spec.n

    def table(self, spec: TableSpec, rows: list[Row]) -> dict:
        """A table of ``rows`` with an independent set of real renders as its first row."""
        s = self.settings
        prompted = spec.prompted()
        reference_counts = [disc_family.COUNTS[i % len(disc_family.COUNTS)] for i in range(s.reference_n)]
        reference_images = generation.real_renders(reference_counts, spec.size, REFERENCE_SEED + s.seed + spec.size)
        reference = analysis.Reference.of(metrics.high_frequency_powers(reference_images),
                                          metrics.patch_moments(reference_images))
        real_images = generation.real_renders(prompted, spec.size, REAL_SEED + SEED_SETS[spec.seed_set] + s.seed + spec.size)
        real = analysis.RowMeasurements(analysis.REAL, "Real renders (independent set)", metrics.count_objects(real_images),
                                        metrics.high_frequency_powers(real_images), metrics.patch_moments(real_images))
        measured = [real] + [row.measurements() for row in rows]
        direct = self.direct_seconds(spec) if spec.scale > 1 else 1.0
        out = analysis.table(spec.name, prompted, measured, list(spec.keys), reference, direct,
                             s.bootstrap_resamples, seed=s.seed)
        out.update(seed_set=spec.seed_set, scale=spec.scale, size=spec.size)
        return out

    def tables(self) -> list[dict]:
        out = []
        for spec in self.specs.values():
            rows = [row for (name, _), row in self.rows.items() if name == spec.name]
            order = {key: i for i, key in enumerate(self._row_order(spec))}
            rows.sort(key=lambda row: order.get(row.method.key, len(order)))
            if spec.seed_set == "k-study":
                out.append(self.k_tables[spec.scale])
            elif spec.scale == 1:
                out.append(self.native_table(spec, rows[0]))
            else:
                out.append(self.table(spec, rows))
        return out

    def native_table(self, spec: TableSpec, row: Row) -> dict:
        """The base model at its native size: the rates every method that starts from it inherits."""
        prompted = spec.prompted()
        entry = {"method": NATIVE, "label": row.method.label, "n": spec.n, "found": row.measurements().found,
                 "seconds_per_image": sum(r.cpu_seconds for r in row.results) / spec.n}
        for metric in analysis.RATES:
            estimate = analysis.stats.rate(analysis.flags(metric, entry["found"], prompted))
            entry[metric] = {"value": estimate.value, "low": estimate.low, "high": estimate.high}
        return {"name": spec.name, "seed_set": spec.seed_set, "scale": 1, "size": spec.size, "n": spec.n,
                "prompted": prompted, "keys": [], "rows": [entry], "comparisons": []}

    def _row_order(self, spec: TableSpec) -> list[str]:
        if spec.seed_set == "k-study":
            return [m.key for m in k_study_methods(self.settings, spec.scale)]
        recipe = self.recipes.get(spec.scale, {}).get("method")
        keys = [m.key for m in headline_methods(self.settings)]
        after_paper = keys.index(Method(CASCADE, k=self.settings.k).key) + 1
        return keys[:after_paper] + ([recipe] if recipe not in (None, *keys) else []) + keys[after_paper:]

    def sample_sheet(self) -> dict[str, torch.Tensor]:
        """Rows of the picture: the native samples, then per size the real renders and every headline row."""
        sheet = {f"native {NATIVE_SIZE}": self.rows[("native", NATIVE)].samples()}
        for scale in self.settings.scales:
            spec = self.specs[f"main-{area(scale)}"]
            counts = [c for c in disc_family.COUNTS for _ in range(SHEET_PER_COUNT)]
            sheet[f"real renders {spec.size}"] = generation.real_renders(counts, spec.size, REAL_SEED + self.settings.seed)
            for key in self._row_order(spec):
                sheet[f"{key} {spec.size}"] = self.rows[(spec.name, key)].samples()
        return sheet


def area(scale: int) -> str:
    return f"{scale * scale}x"


def stage_sizes(size: int) -> list[int]:
    """Sizes of the cascade's high-resolution stages up to ``size`` (each one an adapter)."""
    return [stage.width for stage in plan_stages(NATIVE_SIZE, NATIVE_SIZE, size, size).stages[1:]]


def interleave_counts(images: torch.Tensor) -> torch.Tensor:
    """Sample-sheet order 1, 2, 3, 1, 2, 3 from images kept count by count."""
    per_count = len(images) // len(disc_family.COUNTS)
    return images.reshape(len(disc_family.COUNTS), per_count, *images.shape[1:]).transpose(0, 1).reshape(images.shape)


def write_sample_sheet(sheet: dict[str, torch.Tensor], path: Path, tile: int = 128) -> None:
    """One labelled row per (method, size): its first images, nearest-upscaled to ``tile`` px, in a PNG."""
    label_width, gap = 160, 4
    per_row = max(len(images) for images in sheet.values())
    canvas = Image.new("RGB", (label_width + per_row * (tile + gap), len(sheet) * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, images) in enumerate(sheet.items()):
        top = row * (tile + gap)
        draw.text((4, top + tile // 2 - 6), name, fill="black")
        chosen = torch.nn.functional.interpolate(interleave_counts(images).clamp(0.0, 1.0), size=tile, mode="nearest")
        for column, image in enumerate(chosen):
            pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            canvas.paste(Image.fromarray(pixels), (label_width + column * (tile + gap), top))
    canvas.save(path)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}


def evaluate(settings: EvalSettings, log: Callable[[str], None] = print) -> tuple[dict, dict[str, torch.Tensor]]:
    """Run every row; returns the results (JSON-ready) and the sample sheet."""
    started_wall, load_before = time.perf_counter(), machine()
    work = Path(tempfile.mkdtemp(prefix="selfcascade-evidence-"))
    executor = executor_for(settings.workers)
    try:
        evaluation = Evaluation(settings, executor, work, log)
        evaluation.run()
        started_analysis = time.process_time()
        tables = evaluation.tables()
        sheet = evaluation.sample_sheet()
        analysis_seconds = time.process_time() - started_analysis
    finally:
        executor.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    generation_seconds = sum(r.cpu_seconds for row in evaluation.rows.values() for r in row.results)
    training_seconds = sum(record.cpu_seconds for record in evaluation.adapter_records)
    payload = {
        "settings": dataclasses.asdict(settings),
        "recipes": {area(scale): recipe for scale, recipe in evaluation.recipes.items()},
        "adapters": [dataclasses.asdict(record) for record in sorted(evaluation.adapter_records, key=lambda r: r.size)],
        "tables": tables,
        "cost": {"generation_cpu_seconds": generation_seconds, "training_cpu_seconds": training_seconds,
                 "analysis_cpu_seconds": analysis_seconds, "wall_seconds": time.perf_counter() - started_wall,
                 "workers": settings.workers, "threads_per_worker": 1,
                 "machine": {**load_before, "load_average_after": machine()["load_average"]}},
        "torch": torch.__version__,
        "sample_sheet_rows": list(sheet),
    }
    return payload, sheet


def write_results(payload: dict, sheet: dict[str, torch.Tensor], command: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, **payload}
    (out / "results.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report.results_markdown(payload), encoding="utf-8")
    write_sample_sheet(sheet, out / "samples.png")
    plot.k_study_plot(payload).save(out / "k_study.png")


def drain(evaluations: Sequence["Evaluation"], after: Callable[[], None] = lambda: None) -> None:
    """Wait for every task the ``evaluations`` submitted (they may share an executor), filing each result with
    its evaluation as it arrives; ``after`` runs after each wake-up and may submit more tasks."""
    while any(evaluation.pending for evaluation in evaluations):
        waiting = {future: evaluation for evaluation in evaluations for future in evaluation.pending}
        done, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            evaluation = waiting[future]
            evaluation._receive(evaluation.pending.pop(future), future.result())
        after()


def quick_arguments(description: str, argv: Optional[Sequence[str]], default_out: Path, writes: str) -> argparse.Namespace:
    """``--quick`` and ``--out`` of an evidence script; a quick run never writes over the committed evidence."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny N and steps: checks the plumbing, not the model")
    parser.add_argument("--out", type=Path, default=default_out, help=f"folder for {writes}")
    args = parser.parse_args(argv)
    if args.quick and args.out == default_out:
        parser.error("--quick never writes the committed evidence: give --out elsewhere")
    return args


def parse_args(argv: Sequence[str]) -> tuple[EvalSettings, Path]:
    defaults = EvalSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="offset of every noise seed, real renders, adapters")
    parser.add_argument("--main-n", type=int, nargs=2, metavar=("N_4X", "N_16X"),
                        help=f"images per headline row (default {defaults.main_n[0]} {defaults.main_n[1]})")
    parser.add_argument("--replication-n", type=int, help=f"images per 16x replication row (default {defaults.replication_n})")
    parser.add_argument("--k-study-n", type=int, help=f"images per K-study row (default {defaults.k_study_n})")
    parser.add_argument("--workers", type=int, help=f"worker processes of one thread (default {defaults.workers}; "
                                                    "1 runs in this process)")
    parser.add_argument("--no-adapter", action="store_true", help="leave out the adapter rows")
    parser.add_argument("--quick", action="store_true", help="tiny N and steps: checks the plumbing, not the method")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json, results.md and the pictures")
    args = parser.parse_args(argv)
    settings = EvalSettings(**QUICK) if args.quick else defaults
    overrides = {"main_n": tuple(args.main_n) if args.main_n else None, "replication_n": args.replication_n,
                 "k_study_n": args.k_study_n, "workers": args.workers}
    settings = dataclasses.replace(settings, seed=args.seed, with_adapter=not args.no_adapter,
                                   **{k: v for k, v in overrides.items() if v is not None})
    counts = len(disc_family.COUNTS)
    if any(n < counts or n % counts for n in (*settings.main_n, settings.replication_n, settings.k_study_n)):
        parser.error(f"every N must be a positive multiple of {counts} (equal thirds per prompted count)")
    if dataclasses.replace(settings, workers=defaults.workers) != defaults and args.out == HERE:
        parser.error("only the default settings write the committed evidence: give --out elsewhere")
    return settings, args.out


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    settings, out = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU seconds comparable between rows, kind to a shared machine
    try:
        payload, sheet = evaluate(settings)
        write_results(payload, sheet, " ".join(argv), out)
    finally:
        torch.set_num_threads(threads)
    print(f"wrote {out / 'results.json'}, results.md, samples.png, k_study.png")


if __name__ == "__main__":
    from selfcascade.benchmarks.evidence import evaluate as package_module  # pickled tasks name the package's module

    package_module.main()
