"""Make a ComfyUI tree you have (e.g. a newer release) runnable for the suite's compatibility run.

Why: the suite's own host is ComfyUI 0.3.75 from PyPI (``provision_host.py``); users run newer
ones. Given a ComfyUI tree, this creates ``.host-<version>/venv`` beside the test host, layered on
the test host's venv (its torch 2.14.1 is reused through a ``.pth`` line, nothing is copied), and
installs the tree's own pinned requirements (frontend, templates, docs, comfy-kitchen, ...) without
the torch lines from the package registry. Hosts from 0.4 on import ``torchaudio`` at start-up and
no torchaudio wheel matches the test torch, so where torchaudio does not import, a stand-in package
that raises on use is installed: the server starts, audio nodes fail when used (audio is outside
this pack).

    python3 scripts/provision_newer_host.py /path/to/ComfyUI
    # prints the command for the run, e.g.:
    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=.host-0.33.0/venv/bin/python bash scripts/test.sh
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import provision_host

TORCH_LINES = {"torch", "torchvision", "torchaudio"}
STAND_IN = '''"""Stand-in for torchaudio, written by scripts/provision_newer_host.py: no wheel matches the test torch."""


def __getattr__(name):
    raise ImportError(f"torchaudio.{name}: torchaudio is a stand-in on this test host (audio is outside the pack)")
'''


def host_version(comfy: Path) -> str:
    """The tree's ``comfyui_version.__version__``, read without importing it."""
    text = (comfy / "comfyui_version.py").read_text()
    found = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not found:
        raise SystemExit(f"{comfy}/comfyui_version.py states no __version__: is this a ComfyUI tree?")
    return found.group(1)


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())


def install_torchaudio_stand_in(python: Path) -> None:
    if subprocess.run([str(python), "-c", "import torchaudio"], capture_output=True).returncode == 0:
        return
    package = site_packages(python) / "torchaudio"
    package.mkdir(exist_ok=True)
    for module in ("__init__.py", "functional.py", "transforms.py"):
        (package / module).write_text(STAND_IN)
    provision_host.log(f"torchaudio stand-in written to {package}")


def provision(comfy: Path) -> Path:
    if not (comfy / "main.py").exists():
        raise SystemExit(f"{comfy} has no main.py: point at a ComfyUI tree")
    base_python, _ = provision_host.provision_bundled()
    venv = provision_host.REPO / f".host-{host_version(comfy)}" / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        provision_host.run([sys.executable, "-m", "venv", str(venv)])
    (site_packages(python) / "_selfcascade_test_host.pth").write_text(f"{site_packages(base_python)}\n")
    requirements = venv.parent / "host-requirements.txt"
    lines = (comfy / "requirements.txt").read_text().splitlines()
    requirements.write_text("\n".join(line for line in lines if line.strip() not in TORCH_LINES) + "\n")
    provision_host.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements),
                        *provision_host.repo_requirements()])
    install_torchaudio_stand_in(python)
    return python


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 scripts/provision_newer_host.py /path/to/ComfyUI")
    comfy = Path(sys.argv[1]).resolve()
    python = provision(comfy)
    print(f"COMFYUI_PATH={comfy} COMFYUI_PYTHON={python} bash scripts/test.sh")


if __name__ == "__main__":
    main()
