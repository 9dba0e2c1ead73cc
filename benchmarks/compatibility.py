"""Run the test suite against a ComfyUI host and record the result for the README's compatibility table.

    python3 benchmarks/compatibility.py                                   # the test host in .host/
    python3 benchmarks/compatibility.py --comfyui ~/ComfyUI --python ~/ComfyUI/venv/bin/python

Runs ``scripts/test.sh`` (the README's test command) in this checkout (a clean clone tests exactly a commit) with
``COMFYUI_PATH``/``COMFYUI_PYTHON`` set for a host other than the test host
(``scripts/provision_newer_host.py`` makes one from any ComfyUI tree), reads pytest's JUnit report,
and writes one entry per host version into ``benchmarks/results/compatibility.json``: the host's
version, the frontend it served, the commit, the counts, the failing tests and the date. The
README's table is rendered from that file (``benchmarks/readme.py``). Minutes: the whole suite runs.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import re
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "compatibility.json"
MAX_LISTED_FAILURES = 40


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def host_facts(python: str, comfyui: str) -> dict[str, str]:
    """The host's ComfyUI version (its comfyui_version.py) and the frontend package its Python has."""
    version = re.search(r'__version__\s*=\s*"([^"]+)"', (Path(comfyui) / "comfyui_version.py").read_text())
    frontend = subprocess.run([python, "-c", "import importlib.metadata as m; "
                               "print(m.version('comfyui-frontend-package'))"],
                              capture_output=True, text=True).stdout.strip()
    return {"host": version.group(1) if version else "unknown", "frontend": frontend or "none"}


def counts(junit: Path) -> tuple[dict[str, int], list[str]]:
    """Passed, failed, errors and skipped from pytest's JUnit XML, and the ids of the tests that did not pass."""
    tally = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    not_passed = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        key = {"failure": "failed", "error": "errors"}.get(outcome, outcome)
        tally[key] += 1
        if key in ("failed", "errors"):
            not_passed.append(f"{case.get('classname')}::{case.get('name')}")
    return tally, not_passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", help="a ComfyUI tree (default: the test host in .host/)")
    parser.add_argument("--python", help="that host's Python (default: the test host's)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.comfyui:
        env.update(COMFYUI_PATH=str(Path(args.comfyui).resolve()), COMFYUI_PYTHON=args.python or "python3")
    python = env.get("COMFYUI_PYTHON", str(REPO / ".host" / "venv" / "bin" / "python"))
    comfyui = env.get("COMFYUI_PATH", str(REPO / ".host" / "ComfyUI"))
    with tempfile.TemporaryDirectory(prefix="selfcascade-compat-") as workdir:
        junit = Path(workdir) / "junit.xml"
        started = time.monotonic()
        exit_code = subprocess.run(["bash", "scripts/test.sh", "-q", "-p", "no:cacheprovider",
                                    f"--junitxml={junit}"], cwd=REPO, env=env).returncode
        minutes = (time.monotonic() - started) / 60
        tally, not_passed = counts(junit)
    facts = host_facts(python, comfyui)
    entry = {**facts, "commit": git("rev-parse", "--short", "HEAD"), "exit_code": exit_code,
             "what": "the whole suite (bash scripts/test.sh): unit, in-process, server and browser tests",
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
             "minutes": round(minutes, 1), **tally, "not_passed": not_passed[:MAX_LISTED_FAILURES],
             "measured_by": "python3 benchmarks/compatibility.py" + (f" --comfyui <{facts['host']} tree>"
                                                                     if args.comfyui else "")}
    document = json.loads(RESULT.read_text()) if RESULT.exists() else {"runs": []}
    document["runs"] = [run for run in document["runs"] if run["host"] != entry["host"]] + [entry]
    document["runs"].sort(key=lambda run: [int(part) if part.isdigit() else 0 for part in run["host"].split(".")])
    RESULT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{facts['host']}: {tally} -> {RESULT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
