"""Write the example workflows (``workflows/*.json``, and ``workflows/api/`` exports) from the descriptions below.

    .host/venv/bin/python scripts/build_workflows.py

Each workflow is built by the real frontend: the script starts the test host (this checkout as a
custom-node pack), opens it in headless Chromium, creates the nodes, sets widgets by name, links
sockets by name, lays the graph out and saves what the frontend's own serializer writes. So widget
order, the seed's extra "control after generate" slot and node sizes are the frontend's, never
hand-counted. Needs ``scripts/provision_browser.sh``. The browser tests load and run every file.
"""
from __future__ import annotations

import functools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "workflows"
API_OUT = OUT / "api"  # API-format exports (what the Run button sends), not listed as templates
# scripts/main_job.py --workflow NAME runs any of them; tests and benchmarks queue some

FLOW_RESULTS = REPO / "benchmarks" / "evidence" / "flow_results.json"  # K measured per shift on the flow demo model


@functools.cache
def flow_results() -> dict:
    return json.loads(FLOW_RESULTS.read_text())


def flow_k(shift: str) -> dict[str, float]:
    """The Self-Cascade KSampler's k and later_k measured at ``shift`` ("shift 3") on the flow demo model."""
    recipe = flow_results()["decision"]["per_shift"][shift]
    return {"k": recipe["k"], "later_k": recipe["later_k"]}


def flow_demo_sampler() -> dict:
    """The flow demo model's sampler settings as the flow study ran them at its loaded shift: its CFG (chosen on a
    held-out seed), steps and sampler, and the K measured best at 16x area."""
    results = flow_results()
    settings = results["settings"]
    return {"steps": settings["steps"], "cfg": results["cfg_choice"]["chosen"], "sampler_name": settings["sampler"],
            "scheduler": settings["scheduler"], **flow_k(f"shift {results['study']['headline_shift']:g}")}


def flow_upscale_k(shift: str) -> float:
    """Self-Cascade Upscale's k measured at ``shift`` on the flow demo model."""
    return flow_results()["upscale_recipes"][shift]["k"]


NEGATIVE = "blurry, lowres, jpeg artifacts, watermark, text, deformed"
PROMPT = ("a cozy wooden cabin by a glacier lake at sunrise, snowy peaks, pine forest, mist over the water, "
          "highly detailed, sharp focus, photograph")


def node(key: str, type_: str, links: Optional[dict[str, tuple[str, Any]]] = None, title: Optional[str] = None,
         size: Optional[tuple[int, int]] = None, **widgets: Any) -> dict:
    """One node: ``links`` maps an input name to (node key, output name or index); widgets by name."""
    return {"key": key, "type": type_, "title": title, "size": size, "widgets": widgets, "links": links or {}}


def note(text: str) -> dict:
    return node("note", "Note", title="Read me", size=(600, 40 + 16 * len(text.splitlines())), text=text)


def checkpoint(name: str) -> list[dict]:
    return [node("ckpt", "CheckpointLoaderSimple", ckpt_name=name),
            node("pos", "CLIPTextEncode", {"clip": ("ckpt", "CLIP")}, title="Positive", text=PROMPT),
            node("neg", "CLIPTextEncode", {"clip": ("ckpt", "CLIP")}, title="Negative", text=NEGATIVE)]



def wan_21(positive: str) -> list[dict]:
    """Wan 2.1 T2V 1.3B's loaders as ComfyUI's example wires them (shift 8 in "shift"), with its prompts."""
    return [node("unet", "UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default"),
            node("clip", "CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan"),
            node("vae", "VAELoader", vae_name="wan_2.1_vae.safetensors"),
            node("shift", "ModelSamplingSD3", {"model": ("unet", "MODEL")}, shift=8.0),
            node("pos", "CLIPTextEncode", {"clip": ("clip", "CLIP")}, title="Positive", text=positive),
            node("neg", "CLIPTextEncode", {"clip": ("clip", "CLIP")}, title="Negative", text=NEGATIVE)]

def sampler(model: str = "ckpt", positive: tuple = ("pos", "CONDITIONING"), negative: tuple = ("neg", "CONDITIONING"),
            latent: str = "base", targets_from_base: bool = True, extra_links: Optional[dict] = None,
            **widgets: Any) -> dict:
    """The Self-Cascade KSampler; by default its target comes from a Self-Cascade Base Latent."""
    links = {"model": (model, "MODEL"), "positive": positive, "negative": negative, "latent_image": (latent, "LATENT"),
             **(extra_links or {})}
    if targets_from_base:
        links.update(target_width=(latent, "target_width"), target_height=(latent, "target_height"))
    settings = {"seed": 42, "steps": 30, "cfg": 7.0, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                "k": 0.7, "later_k": 0.0, "upscale_method": "bilinear", **widgets}
    return node("cascade", "SelfCascadeKSampler", links, **settings)


def decode_and_save(prefix: str, tiled: bool = False, latent: tuple = ("cascade", "LATENT")) -> list[dict]:
    links = {"samples": latent, "vae": ("ckpt", "VAE")}
    decode = (node("decode", "VAEDecodeTiled", links, tile_size=1024, overlap=64, temporal_size=64,
                   temporal_overlap=8) if tiled else node("decode", "VAEDecode", links))
    return [decode, node("save", "SaveImage", {"images": ("decode", "IMAGE")}, filename_prefix=f"selfcascade/{prefix}")]


WORKFLOWS: dict[str, list[dict]] = {
    "sd15_512_to_2048_tuning_free": [
        note("Self-Cascade, tuning-free: SD1.5 from 512x512 to 2048x2048 (16x the pixels).\n\n"
             "Empty Latent Image sets the base: SD1.5's native 512x512.\n"
             "scale_by 4.0 asks for 4x per side; the sampler climbs in two stages of 2x\n"
             "(512 -> 1024 -> 2048), its panel lists them before you run.\n"
             "Each stage upsamples the clean result (the pivot), re-noises it to t = K and\n"
             "denoises with the same model and prompt. k (K) = 0.7 is the paper's\n"
             "t = 700 of 1000: 50 base steps, 35 per stage (paper: DDIM, 50 steps).\n"
             "Lower K keeps more of the pivot; higher K repaints more (and may repeat objects).\n"
             "After a run the panel shows the size, steps and seconds of every stage."),
        *checkpoint("v1-5-pruned-emaonly.safetensors"),
        node("base", "EmptyLatentImage", width=512, height=512, batch_size=1),
        sampler(latent="base", targets_from_base=False, steps=50, cfg=7.5, sampler_name="ddim",
                scheduler="ddim_uniform", scale_by=4.0),
        *decode_and_save("sd15_2048"),
    ],
    "sdxl_1024_to_2048_tuning_free": [
        note("Self-Cascade, tuning-free: SDXL from its native 1024x1024 to 2048x2048.\n\n"
             "Self-Cascade Base Latent makes an empty latent at the model's native area with\n"
             "the target's aspect, and passes the target on: set the final size there only.\n"
             "One high-resolution stage (2x per side). K = 0.7: the stage runs the last\n"
             "70% of the 30-step schedule. cfg, sampler and scheduler apply to every stage.\n"
             "Other aspect ratios work too (e.g. 2560x1440: base 1344x768)."),
        *checkpoint("sd_xl_base_1.0.safetensors"),
        node("base", "SelfCascadeBaseLatent", {"model": ("ckpt", "MODEL")}, target_width=2048, target_height=2048,
             batch_size=1, length=1),
        sampler(),
        *decode_and_save("sdxl_2048"),
    ],
    "sdxl_1024_to_4096_tiled_decode": [
        note("Self-Cascade, tuning-free: SDXL from 1024x1024 to 4096x4096 in two stages\n"
             "(1024 -> 2048 -> 4096), each at most 2x per side as in the paper.\n\n"
             "The 4096x4096 stage needs a large GPU (about 20 GB with SDXL in fp16).\n"
             "VAE Decode (Tiled) decodes the 4096x4096 latent in 1024-pixel tiles so the\n"
             "decoder fits in memory. upscale_method bicubic is the official code's choice;\n"
             "bilinear is the paper's. A lower K (0.6) keeps more of each pivot at this size."),
        *checkpoint("sd_xl_base_1.0.safetensors"),
        node("base", "SelfCascadeBaseLatent", {"model": ("ckpt", "MODEL")}, target_width=4096, target_height=4096,
             batch_size=1, length=1),
        sampler(k=0.6, upscale_method="bicubic"),
        *decode_and_save("sdxl_4096", tiled=True),
    ],
    "sdxl_tuned_official_adapter": [
        note("Self-Cascade, tuned: SDXL 1024 -> 2048 with the official learned upsampler.\n\n"
             "Put the official SDXL upsampler weights (upsampler_only.pth) in\n"
             "models/upsampler_adapters (scripts/convert_official_adapter.py turns it into\n"
             "a .safetensors if you prefer). Load Upsampler Adapter shows what the file was\n"
             "made for; the sampler applies it in every high-resolution stage with that\n"
             "stage's pivot. adapter_strength 1.0 is as trained; 0 is the tuning-free result."),
        *checkpoint("sd_xl_base_1.0.safetensors"),
        node("adapter", "SelfCascadeLoadUpsamplerAdapter", adapter_name="upsampler_only.pth"),
        node("base", "SelfCascadeBaseLatent", {"model": ("ckpt", "MODEL")}, target_width=2048, target_height=2048,
             batch_size=1, length=1),
        sampler(extra_links={"upsampler_adapter": ("adapter", "UPSAMPLER_ADAPTER")}, adapter_strength=1.0),
        *decode_and_save("sdxl_2048_tuned"),
    ],
    "hand_built_cascade": [
        note("A Self-Cascade built from core nodes, one stage at a time (SDXL 1024 -> 2048).\n\n"
             "1. KSampler makes the base image (the pivot) at 1024x1024.\n"
             "2. Pivot Upscale doubles it, sized by the model's family (latent bilinear; a VAE: pixels).\n"
             "3. Pivot Reschedule cuts the 30-step schedule at t = K (0.7): 21 steps.\n"
             "4. Apply Upsampler Adapter (optional, tuned version) patches the model with the\n"
             "   learned upsampler fed by the base pivot.\n"
             "5. SamplerCustom with add_noise on re-noises the upscaled pivot to t = K and\n"
             "   denoises it. noise_seed = seed + 1, as Self-Cascade KSampler's stage 1.\n"
             "Repeat 2-5 for more stages. Bypass step 4 (Ctrl+B) for the tuning-free version."),
        *checkpoint("sd_xl_base_1.0.safetensors"),
        node("base", "EmptyLatentImage", width=1024, height=1024, batch_size=1),
        node("base_sampler", "KSampler", {"model": ("ckpt", "MODEL"), "positive": ("pos", "CONDITIONING"),
                                          "negative": ("neg", "CONDITIONING"), "latent_image": ("base", "LATENT")},
             seed=42, steps=30, cfg=7.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=1.0),
        node("upscale", "SelfCascadePivotUpscale", {"samples": ("base_sampler", "LATENT"), "model": ("ckpt", "MODEL")},
             upscale_method="bilinear", scale_by=2.0, width=0, height=0),
        node("reschedule", "SelfCascadePivotReschedule", {"model": ("ckpt", "MODEL")}, scheduler="karras", steps=30,
             k=0.7, stage_steps=0),
        node("adapter", "SelfCascadeLoadUpsamplerAdapter", adapter_name="upsampler_only.pth"),
        node("apply", "SelfCascadeApplyUpsamplerAdapter", {"model": ("ckpt", "MODEL"), "upsampler_adapter": ("adapter", 0),
                                                "pivot": ("base_sampler", "LATENT")},
             strength=1.0, start_percent=0.0, end_percent=0.9),
        node("sampler_select", "KSamplerSelect", sampler_name="dpmpp_2m"),
        node("cascade", "SamplerCustom", {"model": ("apply", "MODEL"), "positive": ("pos", "CONDITIONING"),
                                          "negative": ("neg", "CONDITIONING"), "sampler": ("sampler_select", "SAMPLER"),
                                          "sigmas": ("reschedule", "SIGMAS"), "latent_image": ("upscale", "LATENT")},
             add_noise=True, noise_seed=43, cfg=7.0),
        *decode_and_save("hand_built_2048", latent=("cascade", "output")),
    ],
    "sdxl_lora_controlnet": [
        note("Self-Cascade with a LoRA and a ControlNet (SDXL 1024 -> 2048).\n\n"
             "Both compose unchanged: the LoRA patches the model every stage uses, and the\n"
             "ControlNet's hint image is resized to each stage's size by ComfyUI itself.\n"
             "Canny turns example.png (ComfyUI's input folder) into edges. end_percent 0.6\n"
             "lets the last steps of each stage refine freely; a strength of 0.5-0.7 keeps the\n"
             "layout without stiff edges at 2048."),
        node("ckpt", "CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors"),
        node("lora", "LoraLoader", {"model": ("ckpt", "MODEL"), "clip": ("ckpt", "CLIP")},
             lora_name="sd_xl_offset_example-lora_1.0.safetensors", strength_model=0.5, strength_clip=0.5),
        node("pos", "CLIPTextEncode", {"clip": ("lora", "CLIP")}, title="Positive", text=PROMPT),
        node("neg", "CLIPTextEncode", {"clip": ("lora", "CLIP")}, title="Negative", text=NEGATIVE),
        node("image", "LoadImage", image="example.png"),
        node("canny", "Canny", {"image": ("image", "IMAGE")}, low_threshold=0.4, high_threshold=0.8),
        node("controlnet", "ControlNetLoader", control_net_name="diffusers_xl_canny_mid.safetensors"),
        node("control", "ControlNetApplyAdvanced", {"positive": ("pos", "CONDITIONING"), "negative": ("neg", "CONDITIONING"),
                                                    "control_net": ("controlnet", "CONTROL_NET"),
                                                    "image": ("canny", "IMAGE"), "vae": ("ckpt", "VAE")},
             strength=0.6, start_percent=0.0, end_percent=0.6),
        node("base", "SelfCascadeBaseLatent", {"model": ("lora", "MODEL")}, target_width=2048, target_height=2048,
             batch_size=1, length=1),
        sampler(model="lora", positive=("control", "positive"), negative=("control", "negative")),
        *decode_and_save("sdxl_lora_controlnet_2048"),
    ],
    "flux_tuning_free_pixel_pivot": [
        note("Self-Cascade, tuning-free, on Flux.1 dev: 1024x1024 -> 2048x2048.\n\n"
             "Flux latents resize badly (smeared, 'plastic' detail), so the VAE input is wired:\n"
             "each pivot is decoded, resized in pixels and encoded again.\n"
             "Flux dev is guidance-distilled: cfg 1.0 (the negative prompt is unused) and the\n"
             "guidance lives in Flux Guidance (3.5). euler + simple, 20 steps. Flux samples at a shift of\n"
             "about 3, where a k on the scheduler's percent axis re-noises the pivot much harder than on SD;\n"
             "k_axis auto reads k as SD's signal-to-noise ratio at t = k instead, and there\n"
             f"k = {flow_k('shift 3')['k']:g} is what the pack measured on its flow demo model (the README's flow recipes)."),
        *checkpoint("flux1-dev-fp8.safetensors"),
        node("guidance", "FluxGuidance", {"conditioning": ("pos", "CONDITIONING")}, guidance=3.5),
        node("base", "SelfCascadeBaseLatent", {"model": ("ckpt", "MODEL")}, target_width=2048, target_height=2048,
             batch_size=1, length=1),
        sampler(positive=("guidance", "CONDITIONING"), extra_links={"vae": ("ckpt", "VAE")}, steps=20, cfg=1.0, sampler_name="euler",
                scheduler="simple", **flow_k("shift 3")),
        *decode_and_save("flux_2048"),
    ],
    "wan21_video_tuning_free": [
        note("Self-Cascade, tuning-free, on video: Wan 2.1 T2V 1.3B, 832x480 -> 1664x960.\n\n"
             "Self-Cascade Base Latent gives Wan's native 832x480 area at the target's aspect,\n"
             "33 frames. Stages upscale space only; the frame count is kept.\n"
             f"ModelSamplingSD3 shift 8 is Wan's schedule; k = {flow_k('shift 8')['k']:g} is what the pack measured at\n"
             "shift 8 on its flow demo model (the README's flow recipes). uni_pc + simple, 30 steps, cfg 6\n"
             "as in ComfyUI's Wan example."),
        *wan_21("a red fox trotting through fresh snow in a sunlit forest, slow tracking shot"),
        node("base", "SelfCascadeBaseLatent", {"model": ("shift", "MODEL")}, target_width=1664, target_height=960,
             batch_size=1, length=33),
        sampler(model="shift", steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", **flow_k("shift 8")),
        node("decode", "VAEDecode", {"samples": ("cascade", "LATENT"), "vae": ("vae", "VAE")}),
        node("save", "SaveAnimatedWEBP", {"images": ("decode", "IMAGE")}, filename_prefix="selfcascade/wan_1664x960",
             fps=16.0, lossless=False, quality=90, method="default"),
    ],
    "upscale_existing_image": [
        note("Self-Cascade Upscale: a picture you already have, 2x per side (SDXL).\n\n"
             "Load Image: pick your image (a generation you liked, a photo). It is encoded once and is the\n"
             "first pivot; each stage (at most 2x per side) upsamples the clean result, re-noises it to\n"
             "t = K and denoises it with your model and prompt; the result is decoded. scale_by 4 runs two\n"
             "stages. Describe the picture in the positive prompt.\n"
             "k is how much the first stage may change: 0.3-0.5 keeps the composition and adds detail,\n"
             "0.7 and above repaints (see the README's measurements). tile auto decodes in tiles above\n"
             "2048x2048 or when ComfyUI estimates the VAE will not fit; the node's panel reports it."),
        *checkpoint("sd_xl_base_1.0.safetensors"),
        node("image", "LoadImage", image="example.png"),
        node("upscale", "SelfCascadeUpscale", {"image": ("image", "IMAGE"), "vae": ("ckpt", "VAE"),
                                               "model": ("ckpt", "MODEL"), "positive": ("pos", "CONDITIONING"),
                                               "negative": ("neg", "CONDITIONING")},
             seed=42, steps=30, cfg=6.0, sampler_name="dpmpp_2m", scheduler="karras", scale_by=2.0, k=0.5,
             later_k=0.0, upscale_method="bilinear", tile="auto", tile_size=512),
        node("save", "SaveImage", {"images": ("upscale", "IMAGE")}, filename_prefix="selfcascade/upscaled"),
    ],
    "upscale_video_frames": [
        note("Self-Cascade Upscale on video frames: Wan 2.1 T2V 1.3B, 2x per side (e.g. 832x480 -> 1664x960).\n\n"
             "Load Video: pick your clip. Get Video Components splits it into frames, audio and frame rate;\n"
             "the frames go through the Wan VAE as one clip (a video latent), are upscaled with the same\n"
             "stages as images, decoded, and Create Video puts the audio and frame rate back.\n"
             "The frame count is kept (clips that are not 4n + 1 frames are padded for the VAE and cut back).\n"
             f"ModelSamplingSD3 shift 8 is Wan's schedule; k {flow_upscale_k('shift 8'):g} is the largest k that kept the\n"
             "composition at shift 8 on the pack's flow demo model (the README's flow recipes)."),
        *wan_21("a detailed, sharp video, natural motion, high resolution"),
        node("video", "LoadVideo", file="input_video.mp4"),
        node("frames", "GetVideoComponents", {"video": ("video", "VIDEO")}),
        node("upscale", "SelfCascadeUpscale", {"image": ("frames", "images"), "vae": ("vae", "VAE"),
                                               "model": ("shift", "MODEL"), "positive": ("pos", "CONDITIONING"),
                                               "negative": ("neg", "CONDITIONING")},
             seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", scale_by=2.0,
             k=flow_upscale_k("shift 8"), later_k=0.0, upscale_method="bilinear", tile="auto", tile_size=512),
        node("assemble", "CreateVideo", {"images": ("upscale", "IMAGE"), "fps": ("frames", "fps"),
                                         "audio": ("frames", "audio")}),
        node("save", "SaveVideo", {"video": ("assemble", "VIDEO")}, filename_prefix="selfcascade/upscaled_video",
             format="auto", codec="auto"),
    ],
    "train_upsampler_adapter": [
        note("Train your own upsampler adapter (Self-Cascade's cheap tuning), then try it.\n\n"
             "Put 50+ images of at least 2048x2048 in ComfyUI/input/upsampler_training.\n"
             "The model stays frozen; only the small adapter learns (paper: about 4k steps\n"
             "for 4x the pixels, 10k for 16x). resolution is the crop and target size; the\n"
             "pivot is half of it. The adapter is saved to models/upsampler_adapters/\n"
             "sdxl_2048_lite.safetensors and used right away by the sampler below.\n"
             "Training takes hours on one GPU: queue it once, then reuse the saved file with\n"
             "Load Upsampler Adapter. scripts/train_adapter.py adds captions and resuming."),
        node("ckpt", "CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors"),
        node("caption", "CLIPTextEncode", {"clip": ("ckpt", "CLIP")}, title="Caption for every image", text=""),
        node("train", "SelfCascadeTrainUpsamplerAdapter", {"model": ("ckpt", "MODEL"), "vae": ("ckpt", "VAE"),
                                                "conditioning": ("caption", "CONDITIONING")},
             image_folder="upsampler_training", resolution=2048, steps=4000, variant="lite", injection="skip",
             k=0.7, learning_rate=5e-5, batch_size=1, seed=0, save_name="sdxl_2048_lite",
             overwrite=False),
        node("pos", "CLIPTextEncode", {"clip": ("ckpt", "CLIP")}, title="Positive", text=PROMPT),
        node("neg", "CLIPTextEncode", {"clip": ("ckpt", "CLIP")}, title="Negative", text=NEGATIVE),
        node("base", "SelfCascadeBaseLatent", {"model": ("ckpt", "MODEL")}, target_width=2048, target_height=2048,
             batch_size=1, length=1),
        sampler(extra_links={"upsampler_adapter": ("train", "UPSAMPLER_ADAPTER")}, adapter_strength=1.0),
        *decode_and_save("sdxl_2048_trained_adapter"),
    ],
    "self_cascade_demo": [
        note("Self-Cascade on the pack's own demo model: no download, seconds on a CPU.\n\n"
             "The demo model is a tiny pixel-space SD1.x-style UNet trained here at 32x32 on one to three\n"
             "coloured discs; its prompt is the disc count. Self-Cascade Base Latent starts at its native\n"
             "32x32; the sampler climbs 32 -> 64 -> 128 (16x the pixels) in two stages of 2x, each\n"
             "re-noising the clean result (the pivot) to t = K = 0.7. Direct sampling at 128x128 tends to\n"
             "draw extra discs; the cascade keeps the base's count. The README's main job runs this\n"
             f"workflow's API export ({API_OUT.relative_to(OUT.parent)}/self_cascade_demo.json)."),
        node("demo", "SelfCascadeDemoModel", count=2),
        node("base", "SelfCascadeBaseLatent", {"model": ("demo", "MODEL")}, target_width=128, target_height=128,
             batch_size=1, length=1),
        sampler(model="demo", positive=("demo", "positive"), negative=("demo", "negative"), seed=1, steps=30, cfg=3.0,
                sampler_name="euler", scheduler="normal"),
        node("decode", "VAEDecode", {"samples": ("cascade", "LATENT"), "vae": ("demo", "VAE")}),
        node("save", "SaveImage", {"images": ("decode", "IMAGE")}, filename_prefix="selfcascade/demo"),
    ],
    "self_cascade_demo_flow": [
        note("Self-Cascade on the pack's flow demo model: a tiny Flux-style transformer, no download.\n\n"
             "Built from ComfyUI's own Flux classes (4x4-pixel patches, RoPE, flow matching at shift 3, as\n"
             "SD3 and Flux load), trained here at 32x32 on one to three coloured discs; its prompt is the\n"
             "disc count. The sampler climbs 32 -> 64 -> 128 in two stages of 2x. On a shifted flow model\n"
             "k_axis auto reads k as SD's signal-to-noise ratio at t = k (the percent axis would re-noise the\n"
             f"pivot much harder): k = {flow_demo_sampler()['k']:g} is what the pack measured there (the README's flow\n"
             "recipes). `--demo-model flow` runs this workflow."),
        node("demo", "SelfCascadeDemoModel", count=2, architecture="flow"),
        node("base", "SelfCascadeBaseLatent", {"model": ("demo", "MODEL")}, target_width=128, target_height=128,
             batch_size=1, length=1),
        sampler(model="demo", positive=("demo", "positive"), negative=("demo", "negative"), seed=1,
                **flow_demo_sampler()),
        node("decode", "VAEDecode", {"samples": ("cascade", "LATENT"), "vae": ("demo", "VAE")}),
        node("save", "SaveImage", {"images": ("decode", "IMAGE")}, filename_prefix="selfcascade/demo_flow"),
    ],
}


def build_all(frontend) -> dict[str, dict]:
    """Each workflow as the frontend serializes it, by file name (without .json)."""
    return {name: frontend.helper("build", {"nodes": nodes}) for name, nodes in WORKFLOWS.items()}


def main() -> None:
    sys.path.insert(0, str(REPO / "tests" / "browser"))  # the browser driver is shared with the browser tests
    from comfy_headless import ComfyServer
    from frontend import Frontend

    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, ComfyServer.for_checkout(Path(workdir)) as server, \
            Frontend(server.url) as frontend:
        for name, workflow in build_all(frontend).items():
            (OUT / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
            print(f"wrote {OUT.relative_to(REPO)}/{name}.json ({len(workflow['nodes'])} nodes)")
            frontend.helper("load", workflow, f"{name}.json")
            API_OUT.mkdir(exist_ok=True)
            (API_OUT / f"{name}.json").write_text(json.dumps(frontend.helper("exportPrompt")["output"], indent=1) + "\n")
            print(f"wrote {API_OUT.relative_to(REPO)}/{name}.json")


if __name__ == "__main__":
    main()
