"""Evidence for the tuned mode on a transformer (issue 22): the flow demo model with and without dit-lite adapters.

The flow demo model (``models/demo/flow_demo_model.py``, a Flux-style DiT) cascades 32 -> 64 (4x area)
and 32 -> 64 -> 128 (16x) at the K the flow study measured best at its loaded shift
(``flow_results.json``'s decision), tuning-free and with a dit-lite upsampler adapter per stage, trained
by the repo's trainer (``adapters/training.py``, velocity loss through the host's model_sampling) on
real renders at that stage's size, with t drawn up to that K, at the UNet adapter evidence's recipe
(96 images, 400 steps of 2, lr 1e-3). Both rows start from the same native samples on the main seeds
(paired), N = 120 per row at each scale. Time is relative to direct sampling at the target, whose CPU
seconds per image come from the flow study's headline (same model, settings and seeds).

    flock /work/cpu-heavy.lock nice -n 5 python benchmarks/evidence/dit_adapter_evaluate.py   # committed
    python benchmarks/evidence/dit_adapter_evaluate.py --quick --out /tmp/dit-evidence          # plumbing
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import torch  # noqa: E402

from selfcascade.benchmarks.evidence import evaluate, report  # noqa: E402
from selfcascade.benchmarks.evidence.evaluate import EvalSettings, TableSpec  # noqa: E402
from selfcascade.benchmarks.evidence.generation import CASCADE, Method  # noqa: E402
from selfcascade.models.demo import flow_demo_model  # noqa: E402
from selfcascade.sampling import schedule  # noqa: E402

HERE = Path(__file__).resolve().parent
FLOW_RESULTS = HERE / "flow_results.json"
QUICK = dict(main_n=(3, 3), reference_n=6, batch=2, steps=4, workers=1, bootstrap_resamples=50, adapter_images=3,
             adapter_steps=2, adapter_batch=1)


def flow_recipe(flow: dict) -> tuple[float, float, str, float]:
    """(K, later K, axis, the trainer's K on the percent axis) of the flow study's recipe at its loaded shift."""
    recipe = flow["decision"]["per_shift"][f"shift {flow['study']['headline_shift']:g}"]
    model_sampling = flow_demo_model.build_flow_model(device=torch.device("meta")).model_sampling
    return recipe["k"], recipe["later_k"], recipe["k_axis"], schedule.k_on_model_axis(model_sampling, recipe["k"],
                                                                                       recipe["k_axis"])


class AdapterEvaluation(evaluate.Evaluation):
    """Tuning-free and tuned rows at both scales; direct's time from the flow study."""

    def __init__(self, settings: EvalSettings, direct_seconds: dict[int, float], executor, work: Path, log):
        super().__init__(settings, executor, work, log)
        (n_4x, n_16x), scales = settings.main_n, settings.scales
        self.specs = {f"main-{evaluate.area(scale)}": TableSpec(f"main-{evaluate.area(scale)}", "main", scale, n, ())
                      for scale, n in zip(scales, (n_4x, n_16x))}
        self.direct = direct_seconds

    def direct_seconds(self, spec: TableSpec) -> float:
        return self.direct[spec.scale]


def run(settings: EvalSettings, later_k: float, k_axis: str, direct_seconds: dict[int, float],
        log=print) -> tuple[dict, list[dict]]:
    work = Path(tempfile.mkdtemp(prefix="selfcascade-dit-evidence-"))
    executor = evaluate.executor_for(settings.workers)
    try:
        evaluation = AdapterEvaluation(settings, direct_seconds, executor, work, log)
        evaluation.submit_training()
        methods = {}
        for scale in settings.scales:
            later = later_k if scale == 4 else 0.0
            tuning_free = Method(CASCADE, k=settings.k, later_k=later, k_axis=k_axis)
            methods[scale] = (tuning_free, dataclasses.replace(tuning_free, adapter=True))
            evaluation.submit_row(evaluation.specs[f"main-{evaluate.area(scale)}"], tuning_free)

        def submit_tuned() -> None:
            if len(evaluation.adapters) == 2 and len(evaluation.rows) == 2:  # both trained: the tuned rows, once
                for scale, (_, tuned) in methods.items():
                    evaluation.submit_row(evaluation.specs[f"main-{evaluate.area(scale)}"], tuned)

        evaluate.drain([evaluation], submit_tuned)
        tables = []
        for scale, (tuning_free, tuned) in methods.items():
            spec = dataclasses.replace(evaluation.specs[f"main-{evaluate.area(scale)}"], keys=(tuning_free.key,))
            rows = [evaluation.rows[(spec.name, method.key)] for method in (tuning_free, tuned)]
            table = evaluation.table(spec, rows)
            for entry in table["rows"]:
                entry["label"] = entry["label"].replace("+ lite adapter", "+ dit-lite adapter")
            tables.append(table)
        records = [dataclasses.asdict(record) for record in sorted(evaluation.adapter_records, key=lambda r: r.size)]
    finally:
        executor.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    generation = sum(r.cpu_seconds for row in evaluation.rows.values() for r in row.results)
    return {"tables": tables, "adapters": records, "generation_cpu_seconds": generation}, tables


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = evaluate.quick_arguments(__doc__, argv, HERE, "dit_adapter_results.json/.md")
    flow = json.loads(FLOW_RESULTS.read_text(encoding="utf-8"))
    k, later_k, k_axis, train_k = flow_recipe(flow)
    settings = EvalSettings(main_n=(120, 120), steps=flow["settings"]["steps"], cfg=flow["cfg_choice"]["chosen"],
                            demo="flow", k=k, adapter_k=train_k, adapter_variant="dit-lite")
    settings = dataclasses.replace(settings, **QUICK) if args.quick else settings
    direct = {table["scale"]: table["direct_seconds_per_image"] for table in flow["tables"] if table["scale"] > 1}
    torch.set_num_threads(1)
    started = time.perf_counter()
    payload, _ = run(settings, later_k, k_axis, direct)
    payload = {"command": " ".join(sys.argv[1:] if argv is None else argv), "settings": dataclasses.asdict(settings),
               "later_k": later_k, "k_axis": k_axis, "recipes": {}, **payload,
               "wall_seconds": time.perf_counter() - started, "machine": evaluate.machine(), "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dit_adapter_results.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    lines = ["# dit-lite upsampler adapters on the flow demo model", ""]
    for table in payload["tables"]:
        lines += [f"## {table['size']}x{table['size']} ({table['scale'] ** 2}x area), N = {table['n']}", "",
                  report.markdown_table(payload, table), ""]
    (args.out / "dit_adapter_results.md").write_text("\n".join(lines + [report.legend(payload), ""]), encoding="utf-8")
    print(f"wrote {args.out / 'dit_adapter_results.json'} and dit_adapter_results.md")


if __name__ == "__main__":
    from selfcascade.benchmarks.evidence import dit_adapter_evaluate as package_module  # pickled tasks name the package's

    package_module.main()
