"""Test session set-up: put the real ComfyUI host on sys.path and load this repo as a package.

The host is ``$COMFYUI_PATH`` when set, else the tree ``scripts/provision_host.py`` made in
``.host/ComfyUI``. The repo is imported under the package name ``selfcascade`` (ComfyUI itself
imports it under its folder name), so tests write ``from selfcascade.sampling import plan``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMFYUI = Path(os.environ.get("COMFYUI_PATH") or REPO / ".host" / "ComfyUI").resolve()
TESTS = REPO / "tests"

if not (COMFYUI / "main.py").exists():
    raise RuntimeError(f"no ComfyUI at {COMFYUI}: run scripts/provision_host.py or set COMFYUI_PATH")
for path in (str(COMFYUI), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

import torch  # noqa: E402  (after the host is on sys.path)
import comfy.cli_args  # noqa: E402

if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True  # must precede comfy.model_management's import


def _load_repo_package() -> None:
    if "selfcascade" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("selfcascade", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["selfcascade"] = module
    spec.loader.exec_module(module)


_load_repo_package()
