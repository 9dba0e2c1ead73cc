"""Train an upsampler adapter on a frozen model (Self-Cascade's cheap tuning, Algorithm 1).

Loads the model, text encoder and VAE with ComfyUI's own loaders, encodes fixed crops of an image
folder once (cached on disk; captions from sidecar .txt files, empty otherwise), trains only the
adapter with AdamW and writes it as a safetensors adapter for Load Upsampler Adapter, with
checkpoints (adapter + ``.state.safetensors`` optimizer state) to resume from.

  python -m scripts.train_adapter --checkpoint sd15.safetensors --images photos/ --resolution 1024 \\
      --output models/upsampler_adapters/sd15-2x.safetensors
  torchrun --nproc_per_node 2 -m scripts.train_adapter ...   (data parallel: NCCL on GPU, gloo on CPU)
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import bootstrap  # noqa: E402

# adapters.modules.ALL_VARIANTS (the package imports only after bootstrap; a test keeps the two equal)
VARIANTS = ("lite", "official-sdxl", "dit-lite")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfcascade" / "training"


@dataclass(frozen=True)
class LoadedModels:
    model: object  # ComfyUI MODEL (ModelPatcher)
    vae: object  # comfy.sd.VAE
    encode_text: Callable[[str], list]  # caption -> CONDITIONING
    base_model_id: str  # recorded in the adapter; a resume must match it
    vae_id: str  # keys the latent cache
    text_id: str  # keys the caption cache


def parse_resolution(text: str) -> tuple[int, int]:
    """'1024' or '1536x1024' (width x height)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: give pixels as 1024 or 1536x1024")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.train_adapter", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    models = parser.add_argument_group("base model (ComfyUI loaders)")
    models.add_argument("--checkpoint", type=Path, help="checkpoint with model, text encoder and VAE")
    models.add_argument("--diffusion-model", type=Path, help="diffusion model alone (then give --vae and --text-encoder)")
    models.add_argument("--vae", type=Path, help="VAE file (overrides the checkpoint's)")
    models.add_argument("--text-encoder", type=Path, action="append", help="text encoder file(s), for --diffusion-model")
    models.add_argument("--text-encoder-type", default="stable_diffusion",
                        help="ComfyUI CLIPType of --text-encoder (stable_diffusion, sd3, flux, ...)")
    data = parser.add_argument_group("data")
    data.add_argument("--images", type=Path, required=True,
                      help="folder of png/jpg/webp images at or above the resolution (recursive); captions in <image>.txt")
    data.add_argument("--resolution", type=parse_resolution, default=(1024, 1024),
                      help="training crop (the target size) in pixels: 1024 or WxH; the pivot is half of it")
    data.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where encoded crops and captions are cached")
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=4000, help="optimizer steps in all (paper: 4k for 4x, 10k for 16x)")
    training.add_argument("--k", type=float, default=0.7, help="K: train t in (0, K] of the time range (paper 0.7)")
    training.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate")
    training.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    training.add_argument("--batch-size", type=int, default=1, help="images per micro-batch in each process")
    training.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    training.add_argument("--seed", type=int, default=0, help="seeds crops, adapter init, sample order, noise and t")
    training.add_argument("--variant", default="lite", choices=VARIANTS,
                          help="adapter variant: lite or official-sdxl for a UNet, dit-lite for a Flux-style transformer")
    training.add_argument("--injection", default=None,
                          help="UNet variants: skip (paper) or backbone (official code); default: the variant's")
    training.add_argument("--precision", default="auto", help="auto (bf16 autocast on GPU, fp32 on CPU), fp32, bf16, fp16")
    output = parser.add_argument_group("output")
    output.add_argument("--output", type=Path, required=True, help="adapter file to write (.safetensors)")
    output.add_argument("--checkpoint-every", type=int, default=500,
                        help="also save <output>-stepNNNNNN.safetensors every N steps (0: only at the end)")
    output.add_argument("--resume", type=Path,
                        help="continue from a checkpoint with its settings (only --steps and outputs from here)")
    output.add_argument("--overwrite", action="store_true", help="replace existing output and checkpoint files")
    return parser


def load_models_from_files(args: argparse.Namespace) -> LoadedModels:
    """Model, VAE and text encoder through ComfyUI's own loaders; ids from the files' fingerprints."""
    import comfy.sd
    import comfy.utils
    import folder_paths
    from selfcascade.adapters.dataset import TrainingInputError, file_fingerprint

    embeddings = folder_paths.get_folder_paths("embeddings")
    if args.checkpoint:
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(args.checkpoint), embedding_directory=embeddings)
        base_id = text_id = vae_id = file_fingerprint(args.checkpoint)
    elif args.diffusion_model:
        if not args.vae or not args.text_encoder:
            raise TrainingInputError("--diffusion-model needs --vae and --text-encoder (or use --checkpoint).")
        model, clip, vae = comfy.sd.load_diffusion_model(str(args.diffusion_model)), None, None
        base_id = file_fingerprint(args.diffusion_model)
        clip_type = getattr(comfy.sd.CLIPType, args.text_encoder_type.upper(), None)
        if clip_type is None:
            raise TrainingInputError(f"unknown --text-encoder-type '{args.text_encoder_type}'; choose one of "
                                     f"{', '.join(t.name.lower() for t in comfy.sd.CLIPType)}.")
        clip = comfy.sd.load_clip([str(p) for p in args.text_encoder], embedding_directory=embeddings, clip_type=clip_type)
        text_id = "+".join([args.text_encoder_type, *(file_fingerprint(p) for p in args.text_encoder)])
    else:
        raise TrainingInputError("give the base model: --checkpoint, or --diffusion-model with --vae and --text-encoder.")
    if args.vae:
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(args.vae)))
        vae_id = file_fingerprint(args.vae)
    if vae is None or vae.first_stage_model is None or clip is None:
        raise TrainingInputError("the checkpoint holds no VAE or text encoder; give --vae / --text-encoder.")

    def encode_text(caption: str) -> list:
        return clip.encode_from_tokens_scheduled(clip.tokenize(caption), show_pbar=False)
    return LoadedModels(model, vae, encode_text, base_id, vae_id, text_id)


def check_outputs(output: Path, start: int, settings_steps: int, every: int, overwrite: bool) -> None:
    """Refuse, before any work, outputs that exist (the final file and every planned checkpoint)."""
    from selfcascade.adapters.dataset import TrainingInputError
    from selfcascade.adapters.training import checkpoint_path, refuse_existing

    if output.suffix != ".safetensors":
        raise TrainingInputError(f"--output '{output}' must end in .safetensors (adapters are safetensors files).")
    if not output.parent.is_dir():
        raise TrainingInputError(f"--output folder '{output.parent}' does not exist; create it or choose another.")
    planned = [checkpoint_path(output, step) for step in range(start + 1, settings_steps) if every and step % every == 0]
    for path in [output, *planned]:
        refuse_existing(path, overwrite)


def peak_memory() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS"


def train(args: argparse.Namespace, load_models: Callable[[argparse.Namespace], LoadedModels]) -> None:
    from tqdm import tqdm

    from selfcascade.adapters.dataset import TrainingCache
    from selfcascade.adapters.fileformat import load_adapter
    from selfcascade.adapters.training import (Trainer, TrainingSettings, checkpoint_path, checkpoint_progress,
                                               fresh_adapter, join_torchrun, prepare_data)

    group = join_torchrun()
    say = print if group.is_main else (lambda *_, **__: None)
    if args.resume:
        trained, start = checkpoint_progress(args.resume)
        settings = replace(trained, steps=args.steps, precision=args.precision)
    else:
        settings = TrainingSettings(*args.resolution, steps=args.steps, k=args.k, learning_rate=args.lr,
                                    weight_decay=args.weight_decay, batch_size=args.batch_size,
                                    accumulation=args.accumulation, seed=args.seed, precision=args.precision)
        start = 0
    settings.check()
    check_outputs(args.output, start, settings.steps, args.checkpoint_every, args.overwrite)

    models = load_models(args)
    adapter = load_adapter(args.resume) if args.resume else fresh_adapter(models.model, args.variant, args.injection,
                                                                            settings)
    with tqdm(desc=f"encoding new crops (cache: {args.cache_dir})", unit="image", disable=not group.is_main,
              dynamic_ncols=True) as encoding:
        def on_encoded(done: int, total: int) -> None:
            encoding.total = total
            encoding.update(done - encoding.n)

        data = prepare_data(args.images, models.vae, settings, TrainingCache(args.cache_dir), models.vae_id,
                            encode_text=models.encode_text, text_id=models.text_id, group=group, progress=on_encoded)
    trainer = Trainer(models.model, adapter, data, settings, models.base_model_id, group)
    if args.resume:
        trainer.restore(args.resume)
    before = trainer.fixed_batch_loss()
    say(f"{len(data.examples)} images, {adapter.parameter_count():,} adapter parameters, global batch "
        f"{settings.global_batch(group.world_size)} over {group.world_size} process(es); fixed-batch loss {before:.4f}")
    with tqdm(total=settings.steps, initial=trainer.step, desc="training", unit="step", disable=not group.is_main,
              dynamic_ncols=True) as bar:
        def on_step(report) -> None:
            bar.set_postfix(loss=f"{report.loss:.4f}", refresh=False)
            bar.update(1)

        started = time.perf_counter()
        trainer.run(on_step, args.checkpoint_every,
                    lambda step: trainer.save(checkpoint_path(args.output, step), overwrite=args.overwrite))
        elapsed = time.perf_counter() - started
    after = trainer.fixed_batch_loss()
    trainer.save(args.output, overwrite=args.overwrite)
    rate = (trainer.step - start) / elapsed
    say(f"saved {args.output}: {trainer.step} steps, loss {trainer.loss:.4f}, fixed-batch loss {before:.4f} -> "
        f"{after:.4f}, {rate:.2f} steps/s, peak {peak_memory()}")


def main(argv: list[str] | None = None,
         load_models: Callable[[argparse.Namespace], LoadedModels] = load_models_from_files) -> int:
    """Exit status 0 on success, 2 on bad input (the message says what to fix)."""
    args = build_parser().parse_args(argv)
    bootstrap()
    import torch.distributed as dist

    try:
        train(args, load_models)
    except (ValueError, OSError) as error:  # TrainingInputError, AdapterError, disk full: the message says the fix
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
