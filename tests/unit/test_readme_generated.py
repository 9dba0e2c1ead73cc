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


@pytest.mark.parametrize("name", sorted(readme.BLOCKS))
def test_a_changed_digit_in_any_generated_block_is_caught(name):
    current = readme.README.read_text(encoding="utf-8")
    body = next(match for match in readme.BLOCK.finditer(current) if match["name"] == name)["body"]
    digit = re.search(r"\d", body)
    tampered_body = body[:digit.start()] + str((int(digit.group()) + 1) % 10) + body[digit.end():]
    tampered = current.replace(body, tampered_body, 1)
    assert readme.render(tampered) != tampered


def test_no_measured_looking_figure_outside_the_generated_blocks():
    unlisted = readme.unlisted_figures(readme.README.read_text(encoding="utf-8"))
    assert not unlisted, ("figures outside generated blocks: render them in a block of benchmarks/readme.py, or list "
                          f"them in its NOT_MEASURED with what they are instead: {unlisted}")


def test_every_not_measured_phrase_is_still_in_the_readme():
    current = readme.README.read_text(encoding="utf-8")
    assert [phrase for phrase in readme.NOT_MEASURED if phrase not in current] == []


def test_a_hand_copied_figure_is_caught_outside_blocks_and_code_but_not_inside():
    text = ("Intro.\n\nThe cascade is 1.7x faster, takes 12 s and 3 CPU-minutes, right in 83% of 1,234 images.\n\n"
            "<!-- generated:x -->\nIn a block: 0.61 and 58%.\n<!-- /generated:x -->\n"
            "```bash\npython run.py --k 0.5  # 2.5 s\n```\nIn code `k=0.45`; [link](https://e.org/v1.2.html); "
            "SD1.5, GPL-3.0 and ComfyUI 0.3.75 are names.\n")
    assert readme.unlisted_figures(text, allowed={}) == [f"line 3: {figure}" for figure in
                                                          ("1.7", "12 s", "3 CPU-minutes", "83%", "1,234")]
    assert readme.unlisted_figures(text, allowed={"is 1.7x faster, takes 12 s and 3 CPU-minutes, right in 83% of 1,234":
                                                  "test"}) == []


def test_a_stale_evidence_sentence_pasted_into_the_real_readme_is_caught():
    current = readme.README.read_text(encoding="utf-8")
    stale = current.replace("## Errors and what they mean", "The base model gets the count right in 58% of images; "
                            "the adapter brings patch FD from 173.4 to 164.5.\n\n## Errors and what they mean", 1)
    assert [figure.split(": ")[1] for figure in readme.unlisted_figures(stale)] == ["58%", "173.4", "164.5"]


def test_an_unknown_block_is_refused():
    with pytest.raises(KeyError, match="no renderer"):
        readme.render("<!-- generated:nonexistent -->\nx\n<!-- /generated:nonexistent -->")
