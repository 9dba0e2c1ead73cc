"""Packaging as the Comfy Registry sees it: comfy-cli's own validator passes with no warnings, and the
archive its packer makes (what a registry or Manager install unpacks) holds what runs and nothing else.

comfy-cli is a dev tool with many dependencies, so it lives in its own virtual environment under
the git-ignored ``.host/`` (made once, reused), never in ComfyUI's Python.
"""
import ast
import shutil
import subprocess
import tomllib
import venv
import zipfile
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


def packed_names(tmp_path: Path) -> list[str]:
    """The archive ``comfy node pack`` makes of this working tree (tracked and new files, as they would be
    committed): comfy-cli zips the files ``git ls-files`` lists, minus the patterns of ``.comfyignore``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    tree = tmp_path / "pack"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    for command in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *command], cwd=tree, check=True)
    result = subprocess.run([str(comfy_cli()), "--skip-prompt", "--no-enable-telemetry", "node", "pack"], cwd=tree,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(tree / "node.zip") as archive:
        return archive.namelist()


def test_the_registry_package_leaves_out_tests_and_benchmarks_and_keeps_what_runs(tmp_path: Path):
    names = packed_names(tmp_path)
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", ".ci/", ".github/"))]
    shipped = {"__init__.py", "LICENSE", "requirements.txt", "pyproject.toml", "web/selfcascade.js",
               "models/demo/demo_model.py", "models/demo/disc_counter_32px.safetensors",  # the main job's models
               "models/demo/flow_demo_model.py", "models/demo/disc_counter_flow_32px.safetensors",
               "scripts/main_job.sh", "scripts/main_job.py", "scripts/comfy_headless.py", "scripts/_bootstrap.py",
               "scripts/provision_host.py", "requirements-dev.txt",  # what the main job runs and installs
               "scripts/train_adapter.py", "scripts/convert_official_adapter.py"}
    shipped |= {f"workflows/{path.name}" for path in (REPO / "workflows").glob("*.json")}
    shipped |= {f"workflows/api/{path.name}" for path in (REPO / "workflows" / "api").glob("*.json")}
    shipped |= {path.relative_to(REPO).as_posix() for folder in ("nodes", "sampling", "adapters")
                for path in (REPO / folder).glob("*.py")}
    assert shipped - set(names) == set()
    for name in (name for name in names if name.endswith(".py")):  # nothing shipped reaches for what was left out
        tree = ast.parse((REPO / name).read_text(encoding="utf-8"))
        modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        modules += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [module for module in modules if module.split(".")[0] in ("tests", "benchmarks", "tiny_pack",
                                                                              "harness")], name
