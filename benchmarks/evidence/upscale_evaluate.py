"""Evidence for Self-Cascade Upscale (issue #16): what an upscaler keeps of an existing image, and the detail it adds.

Inputs are real renders of the disc family at 32x32 (N scenes, a third each with 1, 2 and 3
discs), the kind of picture a user already has. Each is upscaled to 64x64 (4x area) and 128x128
(16x area) by

  bicubic          the image resized (``comfy.utils.common_upscale``)
  hires fix        one img2img pass: encoded, upscaled (bilinear) to the target, resampled by the
                   demo model at denoise 0.5 (KSampler's img2img), decoded
  upscale (K)      Self-Cascade Upscale, tuning-free: ``sampling.upscale.run_upscale``, the node's own
                   code, at several K of the first stage (the faithfulness dial)
  upscale + adapter  the same at the node's default K with a lite upsampler adapter per stage, trained
                   by ``adapter_run.train_adapter`` at ``evaluate.py``'s settings

with the demo model (``models/demo``) prompted with the input's count, as a user would describe it.
The diffusion rows share noise seeds (hires fix and stage 1 use the same seed).

Kept of the input: count kept (the output's object count equals the input's own, Wilson interval),
extra objects (more than the input), and the mean distance from each input disc's centre to the
nearest object of the output, in input pixels (bootstrap over images). Detail: HF ratio and patch
FD (``metrics.py``) against the same scenes rendered at the target size. Colour and tone: the shift
of each channel's mean (levels of 255), the ratio of each channel's standard deviation, and that
ratio on the background alone (the input's faint texture), output (area-downsampled to 32x32) against
input. Rows run in parallel worker processes of one thread each.

    flock /work/cpu-heavy.lock nice -n 5 python benchmarks/evidence/upscale_evaluate.py   # the committed results
    python benchmarks/evidence/upscale_evaluate.py --quick --out /tmp/upscale-evidence       # plumbing check
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import comfy.sample  # noqa: E402
import comfy.utils  # noqa: E402
import nodes as host_nodes  # noqa: E402

from selfcascade.benchmarks.evidence import disc_family, metrics, stats  # noqa: E402
from selfcascade.sampling.cascade import CascadeRun, CascadeSettings, stage_seed  # noqa: E402
from selfcascade.sampling.families import detect_family  # noqa: E402
from selfcascade.sampling.upscale import prepare_upscale, run_upscale  # noqa: E402

HERE = Path(__file__).resolve().parent
BICUBIC, HIRES, UPSCALE, ADAPTER = "bicubic", "hires fix", "upscale", "upscale + adapter"
LABELS = {BICUBIC: "Bicubic", HIRES: "Hires fix, one pass (denoise 0.5)", UPSCALE: "Self-Cascade Upscale",
          ADAPTER: "Self-Cascade Upscale + lite adapter"}
NODE_DEFAULT_K = 0.5  # the Self-Cascade Upscale node's default k (nodes/upscale_nodes.py)
SHEET_IMAGES = 6
BACKGROUND_MARGIN = 2  # input pixels between a disc and what counts as background


@dataclass(frozen=True)
class UpscaleEvalSettings:
    n: int = 120  # input images per row, a third per count
    seed: int = 0
    steps: int = 20
    cfg: float = 2.0  # evaluate.py's, chosen on a held-out seed at the native size
    sampler: str = "euler"
    scheduler: str = "normal"
    default_k: float = NODE_DEFAULT_K
    ks_at_4x: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)  # the K study: one stage, so K is all of it
    ks_at_16x: tuple[float, ...] = (0.3, 0.5, 0.7)
    hires_denoise: float = 0.5
    adapter_images: int = 96  # evaluate.py's adapter recipe
    adapter_steps: int = 400
    adapter_lr: float = 1e-3
    adapter_batch: int = 2
    resamples: int = 200  # bootstrap resamples of set-level statistics (patch FD is a Gaussian fit per resample)
    workers: int = 2
    demo: str = "unet"  # the demo model that upscales: a key of generation.DEMO_MODELS
    shift: float = 0.0  # flow models: the sampling shift (0: the model's own)


QUICK = dict(n=3, steps=3, ks_at_4x=(0.5,), ks_at_16x=(0.5,), adapter_images=3, adapter_steps=2, adapter_batch=1,
             resamples=20)


@dataclass(frozen=True)
class RowSpec:
    scale: int  # per side: 2 is 4x area, 4 is 16x
    method: str
    k: Optional[float] = None  # first-stage K of the Self-Cascade rows
    k_axis: str = "percent"  # what K measures (the node's k_axis); percent: every committed row's

    @property
    def size(self) -> int:
        return disc_family.NATIVE_SIZE * self.scale

    def label(self) -> str:
        axis = "" if self.k_axis == "percent" else f" on the {self.k_axis} axis"
        return LABELS[self.method] + (f", K {self.k:.1f}{axis}" if self.k is not None else "")


def row_specs(s: UpscaleEvalSettings) -> list[RowSpec]:
    rows = []
    for scale, ks in ((2, s.ks_at_4x), (4, s.ks_at_16x)):
        rows += [RowSpec(scale, BICUBIC), RowSpec(scale, HIRES), *(RowSpec(scale, UPSCALE, k) for k in ks),
                 RowSpec(scale, ADAPTER, s.default_k)]
    return rows


def input_scenes(s: UpscaleEvalSettings) -> disc_family.Scenes:
    """The N scenes to upscale, from a seed apart from the training and the other evaluations' seeds."""
    counts = [disc_family.COUNTS[i % len(disc_family.COUNTS)] for i in range(s.n)]
    return disc_family.sample_scenes(counts, np.random.default_rng(30_000 + s.seed))


# --- generation, in worker processes -------------------------------------------------------------

_worker: dict = {}


def _start_worker(demo: str = "unet", shift: float = 0.0) -> None:
    from selfcascade.benchmarks.evidence.generation import DemoModel

    torch.set_num_threads(1)
    loaded = DemoModel(demo)
    model = loaded.at_shift(shift)
    _worker.update(model=model, contexts=loaded.contexts, vae=loaded.vae, family=detect_family(model, loaded.vae),
                   conditioning=loaded.module.conditioning)


def train_stage_adapter(size: int, s: UpscaleEvalSettings, folder: str) -> dict:
    """A lite adapter for the stage that ends at ``size``, saved in ``folder``; what it took."""
    from selfcascade.adapters.fileformat import save_adapter
    from selfcascade.benchmarks.evidence.adapter_run import AdapterRecipe, train_adapter

    started = time.process_time()
    recipe = AdapterRecipe(size, s.adapter_images, s.adapter_steps, s.adapter_lr, s.adapter_batch, s.seed + size)
    adapter, before, after = train_adapter(_worker["model"], _worker["contexts"], _worker["vae"], recipe)
    path = Path(folder) / f"upscale_evidence_{size}.safetensors"
    save_adapter(path, adapter, overwrite=True)
    return {"size": size, "path": str(path), "params": sum(p.numel() for p in adapter.module.parameters()),
            "loss_before": before, "loss_after": after, "cpu_seconds": time.process_time() - started}


def _groups(counts: Sequence[int], seed: int) -> list[tuple[int, list[int], int]]:
    """(count, image indices, noise seed) per count: one prompt and one noise batch each, as in evaluate.py."""
    return [(c, [i for i, n in enumerate(counts) if n == c], seed + 100 * c) for c in disc_family.COUNTS if c in counts]


def _upscale_group(spec: RowSpec, s: UpscaleEvalSettings, images: torch.Tensor, count: int, seed: int,
                   adapters: dict[int, str]) -> torch.Tensor:
    """``images`` (B, 3, 32, 32) of one count upscaled to ``spec.size`` by ``spec.method``; (B, 3, size, size)."""
    if spec.method == BICUBIC:
        return comfy.utils.common_upscale(images, spec.size, spec.size, "bicubic", "disabled").clamp(0.0, 1.0)
    model, vae = _worker["model"], _worker["vae"]
    positive = _worker["conditioning"](_worker["contexts"][count])
    negative = _worker["conditioning"](_worker["contexts"][0])
    pixels = images.movedim(1, -1)
    if spec.method == HIRES:
        (latent,) = host_nodes.VAEEncode().encode(vae, pixels)
        upscaled = comfy.utils.common_upscale(latent["samples"], spec.size, spec.size, "bilinear", "disabled")
        hires_seed = stage_seed(seed, 1)
        sampled = comfy.sample.sample(model, comfy.sample.prepare_noise(upscaled, hires_seed), s.steps, s.cfg,
                                      s.sampler, s.scheduler, positive, negative, upscaled, denoise=s.hires_denoise,
                                      disable_pbar=True, seed=hires_seed)
        (decoded,) = host_nodes.VAEDecode().decode(vae, {"samples": sampled})
        return decoded.movedim(-1, 1)
    stage_patch = None
    if spec.method == ADAPTER:
        from selfcascade.adapters.fileformat import load_adapter
        from selfcascade.adapters.injection import apply_upsampler_adapter

        by_stage = {index: load_adapter(adapters[disc_family.NATIVE_SIZE * 2**index]) for index in (1, 2)}

        def stage_patch(stage_model, pivot, index):
            return apply_upsampler_adapter(stage_model, by_stage[index], pivot)
    settings = CascadeSettings(seed, s.steps, s.cfg, s.sampler, s.scheduler, spec.k, k_axis=spec.k_axis)
    source = prepare_upscale(model, vae, pixels, _worker["family"], 0.0, spec.size, spec.size)
    run = CascadeRun(model, positive, negative, source.plan, _worker["family"], settings, stage_patch=stage_patch,
                     console_bar=False)
    result = run_upscale(run, vae, source, tile="never")
    return result.images.movedim(-1, 1)


def run_row(spec: RowSpec, s: UpscaleEvalSettings, adapters: dict[int, str]) -> dict:
    """Generate and score one row; returns the row and its first images for the sample sheet."""
    scenes = input_scenes(s)
    inputs = disc_family.render(scenes, disc_family.NATIVE_SIZE)
    counts = metrics.count_objects(inputs)
    outputs = torch.zeros(s.n, 3, spec.size, spec.size)
    started = time.process_time()
    with torch.inference_mode():
        for count, indices, seed in _groups(counts, s.seed):
            outputs[indices] = _upscale_group(spec, s, inputs[indices], count, seed, adapters).float().cpu()
    seconds = time.process_time() - started
    row = score(spec, outputs, inputs, counts, disc_family.render(scenes, spec.size), s)
    row["seconds_per_image"] = seconds / s.n
    return {"row": row, "sheet": outputs[:SHEET_IMAGES]}


# --- scores ----------------------------------------------------------------------------------------

def _estimate(estimate: stats.Estimate) -> dict:
    return dataclasses.asdict(estimate)


def colour_and_tone(outputs: torch.Tensor, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image, the output area-downsampled to the input's size against the input: the mean absolute shift of
    the channel means (levels of 255), the mean ratio of the channel standard deviations (what a global colour
    match would correct), and that ratio on the background only (2 px away from any disc: the faint texture)."""
    small = torch.nn.functional.adaptive_avg_pool2d(outputs.double(), inputs.shape[-2:])
    reference = inputs.double()
    shift = (small.mean((-2, -1)) - reference.mean((-2, -1))).abs().mean(-1) * 255.0
    contrast = (small.std((-2, -1)) / reference.std((-2, -1))).mean(-1)
    discs = (reference.amax(1) - reference.amin(1) > metrics.SATURATION_THRESHOLD).numpy()
    texture = []
    for image, original, mask in zip(small, reference, discs):
        background = torch.from_numpy(~scipy.ndimage.binary_dilation(mask, iterations=BACKGROUND_MARGIN))
        texture.append(float((image[:, background].std(-1) / original[:, background].std(-1)).mean()))
    return shift.numpy(), contrast.numpy(), np.array(texture)


def score(spec: RowSpec, outputs: torch.Tensor, inputs: torch.Tensor, input_counts: Sequence[int],
          truth: torch.Tensor, s: UpscaleEvalSettings) -> dict:
    found = metrics.count_objects(outputs)
    kept = [f == c for f, c in zip(found, input_counts)]
    extra = [f > c for f, c in zip(found, input_counts)]
    displacement = np.array([metrics.centre_displacement(a, b) for a, b in
                             zip(metrics.object_centres(inputs), metrics.object_centres(outputs))])
    located = displacement[np.isfinite(displacement)] * disc_family.NATIVE_SIZE  # in input pixels
    shift, contrast, texture = colour_and_tone(outputs, inputs)

    def set_statistic(function: Callable[[torch.Tensor, torch.Tensor], float]) -> stats.Estimate:
        return stats.bootstrap(lambda idx: function(outputs[idx], truth[idx]), len(outputs), seed=s.seed,
                               resamples=s.resamples)

    return {"scale": spec.scale, "size": spec.size, "method": spec.method, "k": spec.k, "k_axis": spec.k_axis,
            "label": spec.label(),
            "n": len(outputs), "kept_flags": kept,
            "count_kept": _estimate(stats.rate(kept)), "extra_objects": _estimate(stats.rate(extra)),
            "centre_shift_px": _estimate(stats.mean_interval(located, seed=s.seed)),
            "lost_every_object": int(len(displacement) - len(located)),
            "hf_ratio": _estimate(set_statistic(metrics.high_frequency_ratio)),
            "patch_fd": _estimate(set_statistic(metrics.patch_frechet_distance)),
            "colour_shift_levels": _estimate(stats.mean_interval(shift, seed=s.seed)),
            "contrast_ratio": _estimate(stats.mean_interval(contrast, seed=s.seed)),
            "background_texture_ratio": _estimate(stats.mean_interval(texture, seed=s.seed))}


def comparisons(rows: list[dict], s: UpscaleEvalSettings) -> list[dict]:
    """Paired McNemar tests of count kept, Holm-corrected within each scale."""
    out = []
    for scale in sorted({row["scale"] for row in rows}):
        at = {(row["method"], row["k"], row.get("k_axis", "percent")): row for row in rows if row["scale"] == scale}
        ours = (UPSCALE, s.default_k, "percent")
        candidates = [(ours, (BICUBIC, None, "percent")), (ours, (HIRES, None, "percent")),
                      ((ADAPTER, s.default_k, "percent"), ours)]
        pairs = [(at[a], at[b]) for a, b in candidates if a in at and b in at]  # the rows this run has
        pvalues = [stats.mcnemar_p(a["kept_flags"], b["kept_flags"]) for a, b in pairs]
        for (a, b), p, adjusted in zip(pairs, pvalues, stats.holm(pvalues)):
            out.append({"scale": scale, "first": a["label"], "second": b["label"],
                        "difference": a["count_kept"]["value"] - b["count_kept"]["value"], "p": p, "p_holm": adjusted})
    return out


# --- output ----------------------------------------------------------------------------------------

def _text(estimate: dict, digits: int) -> str:
    return stats.Estimate(**estimate).text(digits)


def markdown(result: dict) -> str:
    s, native = result["settings"], disc_family.NATIVE_SIZE
    lines = ["# Self-Cascade Upscale on the disc family (demo model)", "",
             f"Reproduce: `{' '.join(['python benchmarks/evidence/upscale_evaluate.py', result['command']]).strip()}`",
             "(demo model: `benchmarks/evidence/train_base_model.py`; "
             f"{result['settings']['workers']} worker processes, {result['wall_seconds']} s wall).", "",
             f"N = {s['n']} real renders at {native}x{native} per row (a third each with 1, 2, 3 discs), seed {s['seed']}, "
             f"{s['steps']} {s['sampler']}/{s['scheduler']} steps, CFG {s['cfg']}, prompt = the input's count. "
             f"Intervals: 95 % (Wilson for rates, bootstrap over images otherwise, {s['resamples']} resamples for HF "
             "ratio and patch FD). Count kept: the output has exactly the input's number of objects; centre shift: "
             "mean distance from each input disc's centre to the nearest object of the output, in input pixels; "
             "HF ratio and patch FD against the same scenes rendered at the target size; colour shift: mean absolute "
             "change of the channel means (levels of 255), contrast: ratio of the channel standard deviations, and "
             "background texture: that ratio on the background only (2 px from any disc), the output area-downsampled "
             "to 32x32. Time: CPU seconds per image, one thread.", ""]
    adapters = result["adapters"]
    if adapters:
        lines += ["Adapters: " + "; ".join(f"{a['size'] // 2}->{a['size']}: {a['params']:,} parameters, "
                                          f"{s['adapter_steps']} steps, fixed-batch loss {a['loss_before']:.4f} -> "
                                          f"{a['loss_after']:.4f}" for a in adapters) + ".", ""]
    for scale in sorted({row["scale"] for row in result["rows"]}):
        size = native * scale
        lines += [f"## {scale * scale}x area: {native}² → {size}²", "",
                  "| Method | Count kept ↑ | Extra objects ↓ | Centre shift (px) ↓ | HF ratio (→1) | Patch FD ↓ "
                  "| Colour shift | Contrast (→1) | Background texture (→1) | CPU s/image |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in (r for r in result["rows"] if r["scale"] == scale):
            lines.append(f"| {row['label']} | {_text(row['count_kept'], 3)} | {_text(row['extra_objects'], 3)} "
                         f"| {_text(row['centre_shift_px'], 2)} | {_text(row['hf_ratio'], 3)} "
                         f"| {_text(row['patch_fd'], 1)} | {_text(row['colour_shift_levels'], 2)} "
                         f"| {_text(row['contrast_ratio'], 3)} | {_text(row['background_texture_ratio'], 3)} "
                         f"| {row['seconds_per_image']:.2f} |")
        lines += ["", "Count kept, paired (McNemar, Holm over this scale's three tests):", ""]
        for c in (c for c in result["comparisons"] if c["scale"] == scale):
            lines.append(f"- {c['first']} vs {c['second']}: {c['difference']:+.3f}, p = {c['p']:.3g} "
                         f"(Holm {c['p_holm']:.3g})")
        lines.append("")
    return "\n".join(lines)


def write_sample_sheet(inputs: torch.Tensor, truth: dict[int, torch.Tensor], sheets: dict[str, torch.Tensor],
                       path: Path, tile: int = 128) -> None:
    """Rows: the inputs, the renders at 128 px, then each 16x row's first images (nearest-upscaled to ``tile``)."""
    named = {"input 32 px": inputs, "real render 128 px": truth[4], **sheets}
    label_width, gap = 230, 4
    canvas = Image.new("RGB", (label_width + SHEET_IMAGES * (tile + gap), len(named) * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, images) in enumerate(named.items()):
        top = row * (tile + gap)
        draw.text((4, top + tile // 2 - 6), name, fill="black")
        chosen = torch.nn.functional.interpolate(images[:SHEET_IMAGES].clamp(0.0, 1.0), size=tile, mode="nearest")
        for column, image in enumerate(chosen):
            pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            canvas.paste(Image.fromarray(pixels), (label_width + column * (tile + gap), top))
    canvas.save(path)


def _cost(spec: RowSpec, s: UpscaleEvalSettings) -> float:
    """Roughly the UNet pixels a row samples, in units of one native-size step."""
    if spec.method == BICUBIC:
        return 0.0
    if spec.method == HIRES:
        return s.steps * spec.scale**2
    return s.steps * spec.k * sum(4**stage for stage in range(1, spec.scale.bit_length()))


def _pool(s: UpscaleEvalSettings) -> Executor:
    """Worker processes of one thread each; with one worker, this process (quick runs and tests)."""
    if s.workers <= 1:
        from selfcascade.benchmarks.evidence.evaluate import InlineExecutor

        _start_worker(s.demo, s.shift)
        return InlineExecutor()
    return ProcessPoolExecutor(s.workers, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=(s.demo, s.shift))


def evaluate(s: UpscaleEvalSettings, log: Callable[[str], None] = print,
             specs: Optional[list[RowSpec]] = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Every row of ``specs`` (default ``row_specs``); adapters are trained only for the sizes adapter rows need."""
    specs = specs or row_specs(s)
    rows, sheets = {}, {}
    with tempfile.TemporaryDirectory(prefix="selfcascade-upscale-evidence-") as folder, _pool(s) as pool:
        sizes = sorted({size for spec in specs if spec.method == ADAPTER for size in (disc_family.NATIVE_SIZE * 2, spec.size)})
        training = [pool.submit(train_stage_adapter, size, s, folder) for size in sizes]
        order = sorted(specs, key=lambda spec: -_cost(spec, s))  # the longest first, so the workers finish together
        futures = {pool.submit(run_row, spec, s, {}): spec for spec in order if spec.method != ADAPTER}
        adapters = [future.result() for future in training]  # meanwhile the free worker draws the other rows
        for adapter in adapters:
            log(f"adapter -> {adapter['size']}: {adapter['params']} parameters, loss {adapter['loss_before']:.4f} -> "
                f"{adapter['loss_after']:.4f}, {adapter['cpu_seconds']:.0f} cpu-s")
        paths = {adapter["size"]: adapter["path"] for adapter in adapters}
        futures.update({pool.submit(run_row, spec, s, paths): spec for spec in order if spec.method == ADAPTER})
        for future in as_completed(futures):
            spec, done = futures[future], future.result()
            rows[spec], sheets[spec.label()] = done["row"], done["sheet"]
            log(f"{spec.size}px {spec.label()}: count kept {done['row']['count_kept']['value']:.3f}, "
                f"{done['row']['seconds_per_image']:.2f} cpu-s/image")
    ordered = [rows[spec] for spec in specs]
    result = {"settings": dataclasses.asdict(s), "torch": torch.__version__, "adapters": adapters, "rows": ordered,
              "comparisons": comparisons(ordered, s)}
    sheet = {f"{spec.label()}": sheets[spec.label()] for spec in specs if spec.scale == 4}
    return result, sheet


def write_results(result: dict, sheet: dict[str, torch.Tensor], s: UpscaleEvalSettings, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scenes = input_scenes(s)
    inputs = disc_family.render(scenes, disc_family.NATIVE_SIZE)
    write_sample_sheet(inputs, {4: disc_family.render(scenes, disc_family.NATIVE_SIZE * 4)}, sheet,
                       out / "upscale_samples.png")
    for row in result["rows"]:
        row.pop("kept_flags")
    (out / "upscale_results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "upscale_results.md").write_text(markdown(result), encoding="utf-8")


def parse_args(argv: Sequence[str]) -> tuple[UpscaleEvalSettings, Path]:
    defaults = UpscaleEvalSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help=f"images per row (default {defaults.n})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of inputs, noise and adapters")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="worker processes (one thread each)")
    parser.add_argument("--quick", action="store_true", help="tiny N and steps: checks the plumbing, not the method")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for upscale_results.{md,json}, upscale_samples.png")
    args = parser.parse_args(argv)
    settings = UpscaleEvalSettings(**QUICK) if args.quick else defaults
    settings = dataclasses.replace(settings, seed=args.seed, workers=args.workers,
                                   **({"n": args.n} if args.n is not None else {}))
    if settings.n < len(disc_family.COUNTS):
        parser.error(f"--n must be at least {len(disc_family.COUNTS)} (one image per count)")
    if args.quick and args.out == HERE:
        parser.error("--quick writes a plumbing check, not the evidence: give --out elsewhere")
    return settings, args.out


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    settings, out = parse_args(argv)
    started = time.monotonic()
    result, sheet = evaluate(settings)
    result["command"] = " ".join(argv)
    result["wall_seconds"] = round(time.monotonic() - started)
    write_results(result, sheet, settings, out)
    print(f"wrote {out / 'upscale_results.md'}, upscale_results.json, upscale_samples.png "
          f"({result['wall_seconds']} s wall)")


if __name__ == "__main__":
    main()
