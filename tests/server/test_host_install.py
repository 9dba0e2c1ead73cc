"""Installed the way ComfyUI-Manager installs it, the pack imports cleanly and serves its nodes.

The Manager clones the repository into ``custom_nodes/`` and pip-installs ``requirements.txt``
with the host's Python. Here the clone is the git-tracked files of this checkout, so a file that
works only because it is untracked (or a test-only import) fails this test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _bootstrap import find_comfyui
from harness import PACK_NAME, REPO, ComfyClient, ComfyServer


def copy_tracked_files(destination: Path) -> None:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():  # tracked but deleted in the working tree: not part of an install
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.mark.slow
def test_manager_style_install_loads_without_import_errors(tmp_path: Path, shipped_node_ids: set[str]):
    pack = tmp_path / "custom_nodes" / PACK_NAME
    copy_tracked_files(pack)
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(pack / "requirements.txt")], check=True)

    with ComfyServer(pack.parent, tmp_path / "host") as server, ComfyClient(server.url) as client:
        info = client.object_info()
        log = server.log_text()

    # by the installed path, not the name: a checkout named like the pack holds the host's own files too
    failures = [line for line in log.splitlines()
                if str(pack) in line and ("Cannot import" in line or "IMPORT FAILED" in line)]
    assert failures == [], log
    assert shipped_node_ids - set(info) == set(), "nodes of the working tree missing after install (untracked file?)"
    assert "TinyModelLoader" not in info  # the test pack ships in the repo but is never registered by it


def test_the_suite_runs_in_a_checkout_named_as_the_manager_names_it(tmp_path: Path):
    """A checkout folder whose name is no Python identifier (``ComfyUI-SelfCascade``): pytest must not import
    the repository's own ``__init__.py`` (the node pack) as a test package (``--confcutdir=tests``)."""
    checkout = tmp_path / PACK_NAME
    copy_tracked_files(checkout)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_plan.py"],
                            cwd=checkout, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COMFYUI_PATH": str(find_comfyui())})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
