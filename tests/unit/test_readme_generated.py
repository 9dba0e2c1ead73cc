"""The README's and docs/' figures are the committed results': every generated block renders to what its document holds."""
from __future__ import annotations

import re

import pytest

from selfcascade.benchmarks import readme

DOCUMENTS = readme.documents()


def blocks_by_document() -> dict[str, list]:
    return {name: [document for document in DOCUMENTS if name in readme.block_names(document.read_text(encoding="utf-8"))]
            for name in readme.BLOCKS}


def test_the_readme_and_the_measured_results_pages_are_covered():
    names = {document.relative_to(readme.REPO).as_posix() for document in DOCUMENTS}
    assert {"README.md", "docs/evidence.md", "docs/upscale-evidence.md", "docs/performance.md"} <= names


def test_every_block_lives_in_exactly_one_document():
    assert {name: len(found) for name, found in blocks_by_document().items() if len(found) != 1} == {}, \
        "a renderer without a block, or a block in two documents"
    every = [name for document in DOCUMENTS for name in readme.block_names(document.read_text(encoding="utf-8"))]
    assert sorted(every) == sorted(readme.BLOCKS), "a block without a renderer"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_generated_block_equals_its_rendering_from_the_results(document):
    current = document.read_text(encoding="utf-8")
    assert readme.render(current, document) == current, \
        f"{document.name} is behind the result files: run python -m benchmarks.readme"


@pytest.mark.parametrize("name", sorted(readme.BLOCKS))
def test_a_changed_digit_in_any_generated_block_is_caught(name):
    [document] = blocks_by_document()[name]
    current = document.read_text(encoding="utf-8")
    body = next(match for match in readme.BLOCK.finditer(current) if match["name"] == name)["body"]
    digit = re.search(r"\d", body)
    tampered_body = body[:digit.start()] + str((int(digit.group()) + 1) % 10) + body[digit.end():]
    tampered = current.replace(body, tampered_body, 1)
    assert readme.render(tampered, document) != tampered


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_measured_looking_figure_outside_the_generated_blocks(document):
    unlisted = readme.unlisted_figures(document.read_text(encoding="utf-8"))
    assert not unlisted, (f"figures outside generated blocks of {document.name}: render them in a block of "
                          f"benchmarks/readme.py, or list them in its NOT_MEASURED with what they are instead: {unlisted}")


def test_every_not_measured_phrase_is_still_in_a_document():
    text = "".join(document.read_text(encoding="utf-8") for document in DOCUMENTS)
    assert [phrase for phrase in readme.NOT_MEASURED if phrase not in text] == []


def test_links_written_from_the_root_are_made_relative_to_a_docs_page():
    text = "See [rows](benchmarks/evidence/results.md), ![plot](benchmarks/evidence/k_study.png), [here](#x) and [web](https://e.org)."
    assert readme.relative_links(text, readme.DOCS / "evidence.md") == (
        "See [rows](../benchmarks/evidence/results.md), ![plot](../benchmarks/evidence/k_study.png), [here](#x) and "
        "[web](https://e.org).")
    assert readme.relative_links(text, readme.README) == text


def test_every_relative_link_of_a_document_reaches_a_file():
    broken = []
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text(encoding="utf-8")):
            if not re.match(r"[a-z]+:", target) and not (document.parent / target).exists():
                broken.append(f"{document.name}: {target}")
    assert broken == []


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
    stale = current.replace("## Limitations", "The base model gets the count right in 58% of images; "
                            "the adapter brings patch FD from 173.4 to 164.5.\n\n## Limitations", 1)
    assert [figure.split(": ")[1] for figure in readme.unlisted_figures(stale)] == ["58%", "173.4", "164.5"]


def test_an_unknown_block_is_refused():
    with pytest.raises(KeyError, match="no renderer"):
        readme.render("<!-- generated:nonexistent -->\nx\n<!-- /generated:nonexistent -->")
