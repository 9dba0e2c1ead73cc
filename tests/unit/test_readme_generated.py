"""The README's figures are the committed results': every generated block renders to what the README holds."""
from __future__ import annotations

import re

import pytest

from selfcascade.benchmarks import readme


def test_every_generated_block_equals_its_rendering_from_the_results():
    current = readme.README.read_text(encoding="utf-8")
    names = readme.block_names(current)
    assert set(names) == set(readme.BLOCKS), "a renderer without a README block, or the reverse"
    assert readme.render(current) == current, "README.md is behind the result files: run python -m benchmarks.readme"


def test_a_changed_digit_in_a_generated_block_is_caught():
    current = readme.README.read_text(encoding="utf-8")
    body = next(readme.BLOCK.finditer(current))["body"]
    digit = re.search(r"\d", body)
    tampered_body = body[:digit.start()] + str((int(digit.group()) + 1) % 10) + body[digit.end():]
    tampered = current.replace(body, tampered_body, 1)
    assert readme.render(tampered) != tampered


def test_an_unknown_block_is_refused():
    with pytest.raises(KeyError, match="no renderer"):
        readme.render("<!-- generated:nonexistent -->\nx\n<!-- /generated:nonexistent -->")
