"""The errors table (docs/errors.md, linked from the README's "Errors and what they mean") documents only
messages that tests assert, and so do the messages the README names.

Each row's fragment must appear in a test of the suite (server, integration or browser tests check
it against what the real host returned), so the table cannot drift from the code unnoticed.
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECTION = re.compile(r"^## Errors and what they mean\n(.*?)^## ", re.S | re.M)


def documented_fragments() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", (REPO / "docs" / "errors.md").read_text(), re.M)


def readme_fragments() -> list[str]:
    section = SECTION.search((REPO / "README.md").read_text()).group(1)
    return re.findall(r"`([^`]+)`", section)


def test_readme_documents_errors():
    assert len(documented_fragments()) >= 15
    assert "(docs/errors.md)" in SECTION.search((REPO / "README.md").read_text()).group(1)
    assert set(readme_fragments()) <= set(documented_fragments())  # the README's picks are rows of the table


def test_every_documented_message_is_asserted_by_a_test():
    this_file = Path(__file__).resolve()
    tests = [path for path in (REPO / "tests").rglob("test_*.py")
             if "node_modules" not in path.parts and path.resolve() != this_file]
    sources = "\n".join(path.read_text() for path in tests)
    missing = [fragment for fragment in documented_fragments() if fragment not in sources]
    assert not missing, f"README errors not asserted by any test: {missing}"
