"""Packaging as the Comfy Registry sees it: comfy-cli's own validator passes with no warnings.

comfy-cli is a dev tool with many dependencies, so it lives in its own virtual environment under
the git-ignored ``.host/`` (made once, reused), never in ComfyUI's Python.
"""
import subprocess
import tomllib
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".host" / "comfy-cli"
COMFY_CLI = "comfy-cli==1.23.0"


def comfy_cli() -> Path:
    executable = TOOLS / "bin" / "comfy"
    if not executable.exists():
        venv.create(TOOLS, with_pip=True)
        subprocess.run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", COMFY_CLI], check=True)
    return executable


def test_comfy_node_validate_passes_without_warnings():
    result = subprocess.run([str(comfy_cli()), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All validation checks passed" in output
    assert "warning" not in output.lower(), output


def test_registry_metadata_is_complete():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["name"] and project["project"]["version"].count(".") == 2
    assert project["project"]["urls"]["Repository"].startswith("https://")
    assert project["project"]["dependencies"] == []  # the host owns torch and everything else we use
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=0.3.64")
    requirements = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert not [line for line in requirements if line.lower().startswith("torch")]
