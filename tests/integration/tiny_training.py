"""Tiny real models for the training CLI, and its entry point with them (also under torchrun).

ComfyUI's loaders cannot detect a tiny model from a file, so ``python tests/integration/tiny_training.py
<train_adapter arguments>`` runs ``scripts/train_adapter.py``'s ``main`` with ``tiny_models`` in place of
``load_models_from_files``: the tiny SD1.5 and VAE of the test pack and a tiny real CLIP text encoder
(ComfyUI's SD1 CLIP classes and tokenizer, one 32-wide layer, seeded weights).
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS, TESTS.parent / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from _bootstrap import bootstrap  # noqa: E402

bootstrap()

import torch  # noqa: E402

import comfy.sd  # noqa: E402
import comfy.sd1_clip  # noqa: E402
import comfy.supported_models_base  # noqa: E402
import train_adapter  # noqa: E402
from tiny_pack.models import CONTEXT_DIM, build_model, build_vae  # noqa: E402

_CLIP_CONFIG = {"hidden_act": "quick_gelu", "hidden_size": CONTEXT_DIM, "intermediate_size": 2 * CONTEXT_DIM,
                "layer_norm_eps": 1e-5, "max_position_embeddings": 77, "num_attention_heads": 2,
                "num_hidden_layers": 1, "projection_dim": CONTEXT_DIM, "vocab_size": 49408, "bos_token_id": 0,
                "eos_token_id": 49407, "pad_token_id": 1}


class _TinyClipModel(comfy.sd1_clip.SDClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options,
                         textmodel_json_config=dict(_CLIP_CONFIG), return_projected_pooled=False)


def build_clip(seed: int = 0) -> comfy.sd.CLIP:
    """A real ``comfy.sd.CLIP`` (SD1 tokenizer and classes) with a tiny text model, seeded ``normal_(0, 0.02)``."""
    target = comfy.supported_models_base.ClipTarget(
        comfy.sd1_clip.SD1Tokenizer, functools.partial(comfy.sd1_clip.SD1ClipModel, clip_model=_TinyClipModel))
    clip = comfy.sd.CLIP(target)
    generator = torch.Generator().manual_seed(seed)
    state = {name: torch.randn(value.shape, generator=generator) * 0.02 if value.is_floating_point() else value
             for name, value in clip.cond_stage_model.state_dict().items()}
    clip.cond_stage_model.load_state_dict(state, strict=True)
    return clip


def tiny_models(args: argparse.Namespace) -> train_adapter.LoadedModels:
    """The CLI's models: tiny SD1.5 (seed 0), VAE and CLIP; fixed ids stand in for file fingerprints."""
    clip = build_clip()

    def encode_text(caption: str) -> list:
        return clip.encode_from_tokens_scheduled(clip.tokenize(caption), show_pbar=False)
    return train_adapter.LoadedModels(build_model("sd15"), build_vae(), encode_text, "tiny-sd15-0", "tiny-vae-0",
                                      "tiny-clip-0")


if __name__ == "__main__":
    sys.exit(train_adapter.main(sys.argv[1:], load_models=tiny_models))
