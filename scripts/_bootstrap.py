"""Make the real ComfyUI importable and load this repo as the package ``selfcascade``.

Used by the command-line tools in ``scripts/`` and by the test suite, so they import the code
exactly as ComfyUI does (relative imports inside one package) against a real host. The host is
``$COMFYUI_PATH``; else the ComfyUI this repo is installed in (``ComfyUI/custom_nodes/<repo>``);
else the test host made by ``scripts/provision_host.py`` in ``.host/ComfyUI``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "selfcascade"


def find_comfyui() -> Path:
    candidates = [os.environ.get("COMFYUI_PATH"), REPO.parent.parent if REPO.parent.name == "custom_nodes" else None,
                  REPO / ".host" / "ComfyUI"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "main.py").exists():
            return Path(candidate).resolve()
    raise SystemExit("no ComfyUI found: set COMFYUI_PATH, install this repo in ComfyUI/custom_nodes, "
                     "or run scripts/provision_host.py")


def bootstrap() -> Path:
    """Put ComfyUI on sys.path (CPU mode without CUDA) and import the repo as ``selfcascade``."""
    comfyui = find_comfyui()
    if str(comfyui) not in sys.path:
        sys.path.insert(0, str(comfyui))
    import torch
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True  # must precede comfy.model_management's import
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return comfyui
