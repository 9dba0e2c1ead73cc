"""The dit-lite evidence's plumbing (issue 22): both stages' adapters trained on the flow demo model, paired rows."""
import json

import pytest

from selfcascade.benchmarks.evidence import dit_adapter_evaluate


@pytest.mark.slow  # tens of CPU seconds: two 2-step trainings and 4-step sampling at toy N
def test_quick_dit_adapter_evaluation_trains_each_stage_and_compares_paired_rows(tmp_path):
    dit_adapter_evaluate.main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "dit_adapter_results.json").read_text())
    assert [record["size"] for record in results["adapters"]] == [64, 128]
    assert results["settings"]["adapter_variant"] == "dit-lite" and results["settings"]["demo"] == "flow"
    for table in results["tables"]:
        real, tuning_free, tuned = (row["method"] for row in table["rows"])
        assert (real, tuned) == ("real", tuning_free.replace("cascade", "adapter", 1))
        assert "dit-lite adapter" in table["rows"][2]["label"]
        assert {c["against"] for c in table["comparisons"]} == {tuning_free}
    assert "## 128x128" in (tmp_path / "dit_adapter_results.md").read_text()
