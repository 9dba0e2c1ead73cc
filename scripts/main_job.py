"""The main job: one Self-Cascade generation through a real, headless ComfyUI, saved as a PNG.

Why through the server: it is exactly what a user's "Queue" button does, so this doubles as the
end-to-end check of packaging, node loading and the cascade. The embedded default model is the tiny
random SD1.5 of ``tests/tiny_pack`` until a trained default model ships; its image is noise-like,
but every stage, the VAE decode and the save are the real host's.

Usage: ``python scripts/main_job.py [--width W --height H --steps N --seed S]`` with the host's
Python (``bash scripts/main_job.sh`` provisions it). Prints the image's path last.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "server"))

import torch  # noqa: E402
from harness import ComfyClient, ComfyServer, Graph, Node  # noqa: E402

OUTPUT_DIR = REPO / "output"
DEFAULT_FAMILY = "sd15"


def cascade_prompt(width: int, height: int, steps: int, seed: int) -> tuple[Graph, Node, Node]:
    """Base latent at the model's native size -> Self-Cascade KSampler to ``width`` x ``height`` -> PNG.

    Returns the graph, the sampler node (its UI text is the stage report) and the SaveImage node.
    """
    graph = Graph()
    model = graph.node("TinyModelLoader", family=DEFAULT_FAMILY, seed=0)
    base = graph.node("SelfCascadeBaseLatent", model=model, target_width=width, target_height=height,
                      batch_size=1, length=1)
    sampler = graph.node(
        "SelfCascadeKSampler", model=model, seed=seed, steps=steps, cfg=5.0, sampler_name="euler",
        scheduler="normal", positive=graph.node("TinyConditioning", family=DEFAULT_FAMILY, seed=0),
        negative=graph.node("TinyConditioning", family=DEFAULT_FAMILY, seed=1), latent_image=base.out(0),
        scale_by=2.0, target_width=base.out(1), target_height=base.out(2), pivot_strength=0.7,
        upscale_method="bilinear", stage_steps=0, denoise=1.0)
    image = graph.node("VAEDecode", samples=sampler, vae=graph.node("TinyVAE", seed=0))
    save = graph.node("SaveImage", images=image, filename_prefix=f"self-cascade/{DEFAULT_FAMILY}")
    return graph, sampler, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024, help="final width in pixels (base: 512, the model's native)")
    parser.add_argument("--height", type=int, default=1024, help="final height in pixels")
    parser.add_argument("--steps", type=int, default=8, help="steps of the base stage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    graph, sampler, save = cascade_prompt(args.width, args.height, args.steps, args.seed)
    with tempfile.TemporaryDirectory(prefix="selfcascade-main-") as workdir:
        # PyTorch's attention kernel: ComfyUI's CPU default (sub-quadratic) is about 5x slower here
        server = ComfyServer.for_checkout(Path(workdir), output_dir=OUTPUT_DIR, cpu=not torch.cuda.is_available(),
                                          extra_args=("--use-pytorch-cross-attention",))
        print(f"starting ComfyUI (log: {server.log_path})", flush=True)
        with server:
            print(f"ComfyUI is up at {server.url}; queueing the cascade", flush=True)
            try:
                with ComfyClient(server.url) as client:
                    result = client.run(graph)
            except AssertionError:
                print(server.log_tail(), file=sys.stderr)
                raise
    print(result.text(sampler.id))
    saved = result.files(save.id, "images")[0]
    print(f"image: {OUTPUT_DIR / saved['subfolder'] / saved['filename']}")


if __name__ == "__main__":
    main()
