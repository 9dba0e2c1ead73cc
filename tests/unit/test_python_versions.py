"""The pack's Python compiles cleanly on every Python a ComfyUI install may run (3.10 to 3.13).

Why: the suite runs on the test host's Python (3.11), but users' ComfyUI installs run 3.10 to 3.13.
Each other interpreter found on this machine (on PATH, or under pyenv) compiles every source file
with warnings as errors, which catches syntax newer than 3.10 and what 3.12/3.13 deprecate (such as
invalid escape sequences). An interpreter that is not installed is skipped, and says so.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPILE_ALL = """
import pathlib, sys
failures = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    if {".host", "node_modules", ".git"} & set(path.parts):
        continue
    try:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except (SyntaxError, SyntaxWarning) as error:
        failures.append(f"{path}: {error}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def interpreter(version: str) -> str | None:
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    return shutil.which(f"python{version}") if not pyenv else pyenv[-1]


@pytest.mark.parametrize("version", ["3.10", "3.12", "3.13"])
def test_every_source_file_compiles_without_warnings(version: str):
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    run = subprocess.run([python, "-W", "error", "-c", COMPILE_ALL, str(REPO)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
