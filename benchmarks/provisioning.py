"""Measure what the README's first command costs on a fresh clone: provisioning time and disk.

    python3 benchmarks/provisioning.py     # minutes; run it under the heavy-job lock on a shared machine

Clones this repository's committed HEAD into a temporary folder, runs ``scripts/provision_host.py``
there exactly as ``scripts/main_job.sh`` and ``scripts/test.sh`` do (a fresh ``.host/``: ComfyUI
copied out of its wheel, a virtual environment with torch and ComfyUI's requirements), and writes
the wall time and the size of ``.host/`` to ``benchmarks/results/provisioning.json``, together with
the conditions that change them (pip's download cache, the machine's load). The README renders the
figures from that file (``benchmarks/readme.py``). The clone is deleted afterwards.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "provisioning.json"
PIP_CACHE = Path.home() / ".cache" / "pip"


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed), as ``du -b`` counts them."""
    return sum(entry.stat(follow_symlinks=False).st_size for entry in folder.rglob("*")
               if entry.is_file() and not entry.is_symlink())


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    cache_before = folder_bytes(PIP_CACHE) if PIP_CACHE.exists() else 0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="selfcascade-provision-") as workdir:
        clone = Path(workdir) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        started = time.monotonic()
        subprocess.run([sys.executable, str(clone / "scripts" / "provision_host.py")], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        host_bytes = folder_bytes(clone / ".host")
        shutil.rmtree(clone / ".host")
    result = {
        "command": "python3 scripts/provision_host.py (what the first bash scripts/main_job.sh or scripts/test.sh runs)",
        "measured_by": "python3 benchmarks/provisioning.py",
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {load_before:.1f} before and "
                   f"{os.getloadavg()[0]:.1f} after (other jobs share this machine)",
        "python": platform.python_version(),
        "pip_cache_bytes_before": cache_before,
        "seconds": round(seconds, 1),
        "host_bytes": host_bytes,
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
