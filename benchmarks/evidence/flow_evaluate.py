"""Evidence on the flow demo model (``models/demo/flow_demo_model.py``): what K means on a shifted flow model.

The pack cuts every family at K on the scheduler's percent axis; on a shifted flow model that
re-noises the pivot far harder than the paper did (issue 19's table). This study measures, at the
sampling shifts users set (1, 3 as SD3/Flux load, 8 as the Wan workflows set; through
ModelSamplingAuraFlow, the multiplier-1 shift node), which K keeps the base composition:

  K study      per shift, on the k-study seeds (N = 60 per row): direct; hires fix at denoise 0.3 and
               0.5 (4x); the cascade with K on the percent axis (0.3 .. 0.8 at 4x, 0.3 .. 0.7 at 16x,
               and at 16x a lower K for the second stage) and with K on the SNR axis (0.5 and the
               paper's 0.7, i.e. the paper's signal-to-noise ratio at the cut)
  axis         for each axis, the single K with the best mean 16x count fidelity over the shifts; the
               SNR axis becomes the meaning of k on flow models only if its best beats the percent
               axis's best (``decide``); per shift, the recipe on the winning axis is the K-study row
               with the best 16x count fidelity within the time budget (``analysis.choose_recipe``)
  headline     at the loaded shift (3), on the main seeds: native (N = 240, and the UNet demo model
               on the same seeds), then at 4x (N = 240) and 16x (N = 120) direct, bicubic, hires fix,
               the paper's K on the percent axis (4x), the SNR-axis K 0.7 and the shift's recipe
  upscale      Self-Cascade Upscale's k on both axes at each shift, 4x, N = 60 (``upscale_evaluate``)

Rows are ``evaluate.py``'s machinery (batches, seeds, metrics, intervals, paired tests with Holm's
correction, one-thread workers, CPU seconds). Cut for time (about 2 CPU hours on this machine): the
headline tables at shifts 1 and 8 (their K study is their evidence), hires fix 0.3 and the paper's K
at 16x in the headline (both in the K study at 4x / 16x), the upscale study at 16x.

    flock /work/cpu-heavy.lock nice -n 5 python benchmarks/evidence/flow_evaluate.py   # committed numbers
    python benchmarks/evidence/flow_evaluate.py --quick --out /tmp/flow-evidence        # plumbing check
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import safetensors  # noqa: E402
import torch  # noqa: E402

from selfcascade.benchmarks.evidence import analysis, disc_family, evaluate, generation, metrics, report  # noqa: E402
from selfcascade.benchmarks.evidence import upscale_evaluate  # noqa: E402
from selfcascade.benchmarks.evidence.evaluate import NATIVE_SIZE, EvalSettings, TableSpec  # noqa: E402
from selfcascade.benchmarks.evidence.generation import CASCADE, DIRECT, HIRES, NATIVE, UPSCALE, Batch, Method  # noqa: E402
from selfcascade.benchmarks.evidence.train_base_model import read_log  # noqa: E402
from selfcascade.benchmarks.evidence.train_flow_model import FlowTrainConfig  # noqa: E402
from selfcascade.models.demo import flow_demo_model  # noqa: E402

HERE = Path(__file__).resolve().parent
PAPER_K = 0.7


@dataclasses.dataclass(frozen=True)
class FlowStudy:
    """What the study runs beyond ``EvalSettings``: shifts, the K grids, the upscale rows."""

    shifts: tuple[float, ...] = (1.0, 3.0, 8.0)
    headline_shift: float = flow_demo_model.SHIFT
    percent_ks: dict = dataclasses.field(default_factory=lambda: {2: (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
                                                                  4: (0.3, 0.4, 0.5, 0.6, 0.7)})
    snr_ks: tuple[float, ...] = (0.5, 0.7)
    later: tuple[tuple[float, float], ...] = ((0.5, 0.3),)  # (K, later K) at 16x, percent axis
    upscale_n: int = 60
    upscale_ks: tuple[float, ...] = (0.3, 0.5, 0.7)
    upscale_snr_ks: tuple[float, ...] = (0.5, 0.7)


SETTINGS = EvalSettings(main_n=(240, 120), k_study_n=60, steps=20, with_adapter=False, demo="flow",
                        hires_denoise=(0.3, 0.5))  # cfg: chosen by choose_cfg
STUDY = FlowStudy()
QUICK = dict(main_n=(3, 3), k_study_n=3, reference_n=6, batch=2, steps=4, workers=1, bootstrap_resamples=50)
QUICK_STUDY = FlowStudy(shifts=(1.0, 3.0), percent_ks={2: (0.3, 0.7), 4: (0.3, 0.7)}, snr_ks=(0.7,), later=(),
                        upscale_n=3, upscale_ks=(0.5,), upscale_snr_ks=(0.7,))
KEEPS = 0.95  # an upscale k keeps the input's composition when this share of outputs keeps its disc count
CFG_CANDIDATES = (1.0, 1.5, 2.0, 3.0, 4.0)
CFG_SEED = 777  # held out from every evaluated seed set, as the UNet's CFG was chosen
CFG_N = 60  # native images per candidate, a third per count


def k_study_methods(study: FlowStudy, settings: EvalSettings, scale: int) -> list[Method]:
    methods = [Method(DIRECT)]
    if scale == 2:
        methods += [Method(HIRES, denoise=d) for d in settings.hires_denoise]
    methods += [Method(CASCADE, k=k) for k in study.percent_ks[scale]]
    if scale == 4:
        methods += [Method(CASCADE, k=k, later_k=later) for k, later in study.later]
    return methods + [Method(CASCADE, k=k, k_axis="snr") for k in study.snr_ks]


def headline_methods(settings: EvalSettings, scale: int) -> list[Method]:
    """The headline rows known before the K study: the recipe row joins them when it is chosen."""
    hires = settings.hires_denoise if scale == 2 else settings.hires_denoise[-1:]
    methods = [Method(DIRECT), Method(UPSCALE), *(Method(HIRES, denoise=d) for d in hires)]
    return methods + ([Method(CASCADE, k=PAPER_K)] if scale == 2 else []) + [Method(CASCADE, k=PAPER_K, k_axis="snr")]


def shift_name(shift: float) -> str:
    return f"shift {shift:g}"


def training_record() -> dict:
    """What the shipped weights cost: parameters, file size, the log's config, final loss and CPU seconds."""
    config, rows = read_log(flow_demo_model.WEIGHTS.parent / flow_demo_model.LOG_NAME, FlowTrainConfig)
    with safetensors.safe_open(str(flow_demo_model.WEIGHTS), "pt") as handle:
        parameters = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys()
                         if not key.startswith("conditioning."))
    return {"config": dataclasses.asdict(config), "parameters": parameters,
            "file_bytes": flow_demo_model.WEIGHTS.stat().st_size, "final_loss": rows[-1].loss,
            "first_loss": rows[0].loss, "cpu_seconds": rows[-1].cpu_seconds, "architecture": flow_demo_model.FLUX_CONFIG,
            "sampling_shift": flow_demo_model.SHIFT}


def choose_cfg(settings: EvalSettings, per_count: int, log=print) -> tuple[float, dict[str, float]]:
    """The CFG with the best native count fidelity on the held-out seed (the lower on a tie), and each one's."""
    fidelity = {}
    for cfg in CFG_CANDIDATES:
        sampling = dataclasses.replace(settings, cfg=cfg).sampling()
        found, prompted = [], []
        for count in disc_family.COUNTS:
            batch = Batch(Method(NATIVE), NATIVE_SIZE, count, per_count, CFG_SEED + 1000 * count, sampling,
                          demo=settings.demo)
            found += generation.run_batch(batch).found
            prompted += [count] * per_count
        fidelity[f"{cfg:g}"] = metrics.count_fidelity(found, prompted)
        log(f"cfg {cfg:g}: native count fidelity {fidelity[f'{cfg:g}']:.3f} on seed {CFG_SEED}")
    best = max(CFG_CANDIDATES, key=lambda cfg: (fidelity[f"{cfg:g}"], -cfg))
    return best, fidelity


def cascade_rows(table: dict, axis: str) -> list[dict]:
    """The table's cascade rows with K on ``axis`` (percent: those without an axis suffix)."""
    return [row for row in table["rows"] if row["method"].startswith("cascade-")
            and (row["method"].endswith("-snr") == (axis == "snr"))]


def fidelity_of(table: dict, key: str) -> float:
    return report.row(table, key)["count_fidelity"]["value"]


def decide(studies: dict[str, dict[str, dict]], settings: EvalSettings, study: FlowStudy) -> dict:
    """K's meaning on flow models, from the 16x K studies: each axis's best single K (the mean count fidelity
    over the shifts), the SNR axis only if it beats the percent axis; then per shift the recipe on the winning
    axis: the best 16x row within the time budget (``analysis.choose_recipe``)."""
    tables = {shift: tables["k-study-16x"] for shift, tables in studies.items()}
    single_k = {"percent": [Method(CASCADE, k=k) for k in study.percent_ks[4]],
                "snr": [Method(CASCADE, k=k, k_axis="snr") for k in study.snr_ks]}  # one K for every stage
    best = {}
    for axis, methods in single_k.items():
        keys = [method.key for method in methods]
        means = {key: sum(fidelity_of(table, key) for table in tables.values()) / len(tables) for key in keys}
        chosen = max(means, key=lambda key: (means[key], key))
        best[axis] = {"method": chosen, "mean_count_fidelity": means[chosen], "means": means}
    axis = "snr" if best["snr"]["mean_count_fidelity"] > best["percent"]["mean_count_fidelity"] else "percent"
    budget = settings.time_budget[1]
    per_shift = {}
    for shift, table in tables.items():
        recipe = analysis.choose_recipe({"rows": cascade_rows(table, axis)}, budget)
        method = next(method for method in k_study_methods(study, settings, 4) if method.key == recipe["method"])
        per_shift[shift] = {**recipe, "k": method.k, "later_k": method.later_k, "k_axis": method.k_axis,
                            "count_fidelity": fidelity_of(table, method.key)}
    return {"axis": axis, "best_single_k": best, "per_shift": per_shift, "budget": budget}


class FlowEvaluation:
    """One ``evaluate.Evaluation`` per shift on one executor; the headline's recipe rows once the K study has run."""

    def __init__(self, settings: EvalSettings, study: FlowStudy, executor, work: Path, log: Callable[[str], None]):
        self.settings, self.study, self.log = settings, study, log
        self.by_shift = {}
        for shift in study.shifts:
            evaluation = evaluate.Evaluation(dataclasses.replace(settings, shift=shift), executor, work, log)
            evaluation.specs = {f"k-study-{evaluate.area(scale)}": TableSpec(f"k-study-{evaluate.area(scale)}", "k-study",
                                                                              scale, settings.k_study_n, (f"cascade-{PAPER_K:g}",))
                                for scale in settings.scales}
            self.by_shift[shift] = evaluation
        self.headline = self.by_shift[study.headline_shift]
        (n_4x, n_16x), (scale_4x, scale_16x) = settings.main_n, settings.scales
        self.headline.specs.update({"native": TableSpec("native", "main", 1, n_4x, ()),
                                    "main-4x": TableSpec("main-4x", "main", scale_4x, n_4x, ()),
                                    "main-16x": TableSpec("main-16x", "main", scale_16x, n_16x, ())})
        self.unet = evaluate.Evaluation(dataclasses.replace(settings, demo="unet", cfg=EvalSettings().cfg, shift=0.0),
                                        executor, work, log)
        self.unet.specs = {"native": self.headline.specs["native"]}
        self.k_studies: Optional[dict[str, dict[str, dict]]] = None  # per shift, the K-study tables, once all ran
        self.decision: Optional[dict] = None
        self.recipes: dict[int, dict] = {}

    def run(self) -> None:
        """The 16x K studies first (the decision waits for them), then everything that does not wait."""
        s = self.settings
        ordered = [self.headline] + [e for e in self.by_shift.values() if e is not self.headline]
        for scale in reversed(s.scales):
            for evaluation in ordered:
                for method in k_study_methods(self.study, s, scale):
                    evaluation.submit_row(evaluation.specs[f"k-study-{evaluate.area(scale)}"], method)
        for scale in reversed(s.scales):
            for method in headline_methods(s, scale):
                self.headline.submit_row(self.headline.specs[f"main-{evaluate.area(scale)}"], method)
        for evaluation in (self.headline, self.unet):
            evaluation.submit_row(evaluation.specs["native"], Method(NATIVE))
        evaluate.drain([*self.by_shift.values(), self.unet], self._submit_recipes)

    def _k_study_tables(self) -> dict[str, dict[str, dict]]:
        """Per shift, the K-study tables (their bootstrap takes minutes: built once, when the last row is in)."""
        out = {}
        for shift, evaluation in self.by_shift.items():
            out[shift_name(shift)] = {}
            for scale in self.settings.scales:
                name = f"k-study-{evaluate.area(scale)}"
                spec = evaluation.specs[name]
                order = [m.key for m in k_study_methods(self.study, self.settings, scale)]
                rows = sorted((row for (table, _), row in evaluation.rows.items() if table == name),
                              key=lambda row: order.index(row.method.key))
                out[shift_name(shift)][name] = {**evaluation.table(spec, rows), "shift": shift}
        return out

    def _submit_recipes(self) -> None:
        if self.decision is not None:
            return
        rows = [row for e in self.by_shift.values() for (name, _), row in e.rows.items() if name.startswith("k-study")]
        if not all(row.done for row in rows):
            return
        self.k_studies = self._k_study_tables()
        self.decision = decide(self.k_studies, self.settings, self.study)
        self.log(f"K axis on flow models: {self.decision['axis']}; per shift {self.decision['per_shift']}")
        chosen = self.decision["per_shift"][shift_name(self.study.headline_shift)]
        for scale in self.settings.scales:
            method = Method(CASCADE, k=chosen["k"], later_k=chosen["later_k"] if scale == 4 else 0.0,
                            k_axis=chosen["k_axis"])
            self.recipes[scale] = {"method": method.key, "budget": chosen["budget"], "within_budget": chosen["within_budget"]}
            self.headline.submit_row(self.headline.specs[f"main-{evaluate.area(scale)}"], method)

    def headline_tables(self) -> list[dict]:
        native = self.headline.specs["native"]
        tables = [self.headline.table(native, [self.headline.rows[("native", NATIVE)]]),
                  {**self.unet.table(native, [self.unet.rows[("native", NATIVE)]]), "name": "native-unet",
                   "demo": "unet", "cfg": self.unet.settings.cfg}]
        for table, name in zip(tables, ("Flow demo model", f"UNet demo model, CFG {self.unet.settings.cfg:g},")):
            next(row for row in table["rows"] if row["method"] == NATIVE)["label"] = f"{name} at its native size"
        for scale in self.settings.scales:
            name = f"main-{evaluate.area(scale)}"
            order = [m.key for m in headline_methods(self.settings, scale)] + [self.recipes[scale]["method"]]
            rows = sorted((row for (table, _), row in self.headline.rows.items() if table == name),
                          key=lambda row: order.index(row.method.key))
            spec = dataclasses.replace(self.headline.specs[name], keys=tuple(dict.fromkeys(
                [self.recipes[scale]["method"], Method(CASCADE, k=PAPER_K, k_axis="snr").key])))
            tables.append({**self.headline.table(spec, rows), "shift": self.study.headline_shift})
        return tables

    def sample_sheet(self) -> dict[str, torch.Tensor]:
        sheet = {f"native {NATIVE_SIZE}": self.headline.rows[("native", NATIVE)].samples()}
        for (name, key), row in self.headline.rows.items():
            if name.startswith("main-") and row.samples() is not None:
                sheet[f"{key} {row.spec.size}"] = row.samples()
        return sheet

    def generation_seconds(self) -> float:
        return sum(r.cpu_seconds for e in (*self.by_shift.values(), self.unet) for row in e.rows.values()
                   for r in row.results)


def upscale_rows(study: FlowStudy) -> list[upscale_evaluate.RowSpec]:
    rows = [upscale_evaluate.RowSpec(2, upscale_evaluate.BICUBIC), upscale_evaluate.RowSpec(2, upscale_evaluate.HIRES)]
    rows += [upscale_evaluate.RowSpec(2, upscale_evaluate.UPSCALE, k) for k in study.upscale_ks]
    return rows + [upscale_evaluate.RowSpec(2, upscale_evaluate.UPSCALE, k, "snr") for k in study.upscale_snr_ks]


def upscale_study(settings: EvalSettings, study: FlowStudy, log=print) -> dict[str, dict]:
    """Self-Cascade Upscale's k on both axes at each shift, 4x (``upscale_evaluate``'s rows and scores)."""
    out = {}
    for shift in study.shifts:
        s = upscale_evaluate.UpscaleEvalSettings(n=study.upscale_n, steps=settings.steps, cfg=settings.cfg,
                                                 workers=settings.workers, demo="flow", shift=shift,
                                                 resamples=min(200, settings.bootstrap_resamples))
        result, _ = upscale_evaluate.evaluate(s, log, specs=upscale_rows(study))
        for row in result["rows"]:
            row.pop("kept_flags")
        out[shift_name(shift)] = {**result, "shift": shift}
    return out


def upscale_recipe(result: dict, axis: str) -> dict:
    """Self-Cascade Upscale's k on ``axis``: the largest (the most new detail) that keeps the count in at least
    ``KEEPS`` of the images, else the one that keeps it most often."""
    rows = [row for row in result["rows"] if row["method"] == upscale_evaluate.UPSCALE and row["k_axis"] == axis]
    keeping = [row for row in rows if row["count_kept"]["value"] >= KEEPS]
    row = max(keeping, key=lambda row: row["k"]) if keeping else max(rows, key=lambda row: row["count_kept"]["value"])
    return {"k": row["k"], "k_axis": axis, "count_kept": row["count_kept"]["value"], "keeps": bool(keeping)}


def run(settings: EvalSettings, study: FlowStudy, log=print) -> tuple[dict, dict[str, torch.Tensor]]:
    started_wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="selfcascade-flow-evidence-"))
    executor = evaluate.executor_for(settings.workers)
    try:
        evaluation = FlowEvaluation(settings, study, executor, work, log)
        evaluation.run()
        studies, headline, sheet = evaluation.k_studies, evaluation.headline_tables(), evaluation.sample_sheet()
    finally:
        executor.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    upscale = upscale_study(settings, study, log)
    payload = {"settings": dataclasses.asdict(settings), "study": dataclasses.asdict(study),
               "recipes": {evaluate.area(scale): recipe for scale, recipe in evaluation.recipes.items()},
               "decision": evaluation.decision, "tables": headline, "k_studies": studies, "upscale": upscale,
               "upscale_recipes": {shift: upscale_recipe(result, evaluation.decision["axis"])
                                   for shift, result in upscale.items()},
               "cost": {"generation_cpu_seconds": evaluation.generation_seconds(),
                        "wall_seconds": time.perf_counter() - started_wall, "workers": settings.workers,
                        "threads_per_worker": 1, "machine": evaluate.machine()},
               "torch": torch.__version__, "sample_sheet_rows": list(sheet)}
    return payload, sheet


def results_markdown(payload: dict) -> str:
    """Every table: native, the headline at the loaded shift, the K studies per shift, the upscale rows."""
    choice, training, decision = payload["cfg_choice"], payload["training"], payload["decision"]
    lines = ["# Flow demo model: what K means on a shifted flow model", "",
             f"CFG {choice['chosen']:g}, chosen on the held-out seed {choice['seed']} (native count fidelity "
             + ", ".join(f"{value:.2f} at CFG {cfg}" for cfg, value in choice["fidelity"].items())
             + f"); {payload['settings']['steps']} {payload['settings']['sampler']}/{payload['settings']['scheduler']} "
             "steps; shifts set as ModelSamplingAuraFlow sets them.", "",
             f"Model: {training['parameters']:,} parameters ({training['file_bytes'] / 1e6:.1f} MB), trained "
             f"{training['config']['steps']} steps of {training['config']['batch']} in "
             f"{training['cpu_seconds'] / 60:.1f} CPU minutes (one thread), velocity loss {training['first_loss']:.3f} -> "
             f"{training['final_loss']:.3f}.", "",
             f"Decision: k on flow models means the **{decision['axis']}** axis. Best single K over the shifts "
             "(mean 16x count fidelity): " + "; ".join(
                 f"{axis} {best['method']} {best['mean_count_fidelity']:.2f}" for axis, best in decision["best_single_k"].items())
             + ". Per shift, the best 16x row within "
             f"{decision['budget']:g}x direct's time: " + "; ".join(
                 f"{shift}: {entry['method']} ({entry['count_fidelity']:.2f})" for shift, entry in decision["per_shift"].items())
             + ".", "",
             f"## Native {NATIVE_SIZE}x{NATIVE_SIZE}, N = {payload['tables'][0]['n']}: flow model, then the UNet demo "
             f"model (CFG {payload['tables'][1]['cfg']:g}) on the same seeds; Time: CPU seconds per image", "",
             report.markdown_table(payload, payload["tables"][0]),
             *report.markdown_table(payload, payload["tables"][1]).splitlines()[3:]]  # the same real renders
    for table in payload["tables"][2:]:
        lines += ["", f"## Headline at shift {table['shift']:g}: {table['size']}x{table['size']} ({table['scale'] ** 2}x "
                  f"area), N = {table['n']}", "", report.markdown_table(payload, table)]
    for shift, tables in payload["k_studies"].items():
        for table in tables.values():
            lines += ["", f"## K study at {shift}: {table['size']}x{table['size']} ({table['scale'] ** 2}x area), "
                      f"N = {table['n']} (k-study seeds)", "", report.markdown_table(payload, table)]
    lines += ["", "## Self-Cascade Upscale, 32 -> 64 px (4x area), real renders as input", "",
              "| Shift | Method | Count kept ↑ | Extra objects ↓ | Centre shift (px) ↓ | HF ratio (→ 1) | Time (s/image) |",
              "|---|---|---|---|---|---|---:|"]
    for shift, result in payload["upscale"].items():
        for row in result["rows"]:
            cells = [upscale_evaluate.stats.Estimate(**row[m]).text(d) for m, d in (("count_kept", 2), ("extra_objects", 2),
                                                              ("centre_shift_px", 2), ("hf_ratio", 3))]
            lines.append(f"| {shift} | {row['label']} | {' | '.join(cells)} | {row['seconds_per_image']:.2f} |")
    return "\n".join(lines + ["", report.legend(payload), ""])


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = evaluate.quick_arguments(__doc__, argv, HERE, "flow_results.json/.md and flow_samples.png")
    settings = dataclasses.replace(SETTINGS, **QUICK) if args.quick else SETTINGS
    study = QUICK_STUDY if args.quick else STUDY
    torch.set_num_threads(1)  # CPU seconds comparable between rows, kind to a shared machine
    cfg, fidelity = choose_cfg(settings, (1 if args.quick else CFG_N) // len(disc_family.COUNTS) or 1)
    payload, sheet = run(dataclasses.replace(settings, cfg=cfg), study)
    payload = {"command": " ".join(sys.argv[1:] if argv is None else argv), "training": training_record(),
               "cfg_choice": {"seed": CFG_SEED, "n": CFG_N, "fidelity": fidelity, "chosen": cfg}, **payload}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flow_results.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    (args.out / "flow_results.md").write_text(results_markdown(payload), encoding="utf-8")
    evaluate.write_sample_sheet(sheet, args.out / "flow_samples.png")
    print(f"wrote {args.out / 'flow_results.json'}, flow_results.md, flow_samples.png")


if __name__ == "__main__":
    from selfcascade.benchmarks.evidence import flow_evaluate as package_module  # pickled tasks name the package's module

    package_module.main()
