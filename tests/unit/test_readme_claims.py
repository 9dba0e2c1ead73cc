"""The README claims only what exists and what a test proves.

- "bit for bit" (or bit-identical) appears only in a paragraph that names the test proving it, and
  that test compares with ``torch.equal``.
- Install routes that need the Comfy Registry are described as what publishing will create: the
  registry id is the package name in ``pyproject.toml``, and the publishing workflow that would
  create it is in the repository, for the publisher that ``pyproject.toml`` names.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXACTNESS = re.compile(r"bit[ -]for[ -]bit|bit-identical", re.IGNORECASE)
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def paragraphs(path: Path) -> list[str]:
    return [block for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if block.strip()]


def function_source(path: Path, name: str) -> str:
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node)
    raise AssertionError(f"{path.relative_to(REPO)} has no test {name}")


def test_every_bit_for_bit_claim_names_a_torch_equal_test():
    claims = [(path, block) for path in DOCUMENTS for block in paragraphs(path) if EXACTNESS.search(block)]
    for path, block in claims:
        references = TEST_REFERENCE.findall(block)
        assert references, f"{path.name}: an exactness claim without the test that proves it:\n{block}"
        for test_file, test_name in references:
            assert "torch.equal(" in function_source(REPO / test_file, test_name), f"{test_file}::{test_name}"


def test_registry_routes_are_what_publishing_creates():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    registry_id, publisher = project["project"]["name"], project["tool"]["comfy"]["PublisherId"]
    registry_mentions = [block for block in paragraphs(REPO / "README.md")
                         if "comfy node install" in block or "ComfyUI-Manager" in block and "install" in block.lower()]
    assert registry_mentions, "the README no longer says how registry installs will work"
    for block in registry_mentions:
        assert block.startswith("**Once published:**"), f"a registry install route presented as working today:\n{block}"
        assert f"`comfy node install {registry_id}`" in block and f"`{registry_id}`" in block
    publish = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert "uses: Comfy-Org/publish-node-action@" in publish and "secrets.REGISTRY_ACCESS_TOKEN" in publish
    assert f"github.repository_owner == '{publisher}'" in publish  # inert anywhere but the publisher's repository
