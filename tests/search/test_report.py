"""What the searches write and print: the selection matrix of their reports, the jobs' summary."""

from __future__ import annotations

import pandas as pd
import pytest

from dgqa_ray.reports import paper_selections, selection_matrix
from dgqa_ray.search.report import search_summary
from dgqa_ray.search.results import SearchResult
from tests.search.helpers import REPO


def test_selection_matrix_has_the_layout_of_table_2():
    rows = paper_selections(REPO / "dgqa_ray" / "reference" / "paper_table2_selected_domains.csv")
    matrix = selection_matrix({"ours: livec": [1, 3, 9], **rows})
    assert list(matrix.columns) == ["target", *(f"#{t}" for t in range(1, 26)), "n"]
    livec = matrix[matrix["target"] == "paper: livec"].iloc[0]
    assert [t for t in range(1, 26) if livec[f"#{t}"] == "x"] == [1, 3, 10, 17, 18, 25]
    assert matrix.iloc[0]["n"] == 3
    with pytest.raises(ValueError, match=r"selections\['bad'\]: type ids out of 1..25: \[26\]"):
        selection_matrix({"bad": [26]})


def test_search_summary_shows_the_trials_or_rounds_the_best_and_the_report():
    table = pd.DataFrame(
        [
            {"trial": "mean_prob-tau0.04", "domain_set": "[1, 3]", "target_srcc": 0.61234},
            {"trial": "mean_prob-tau0.05", "domain_set": "[1]", "target_srcc": 0.5},
        ]
    )
    best = {"trial": "mean_prob-tau0.04", "domain_set": "[1, 3]", "target_srcc": 0.61234}
    sweep = search_summary(SearchResult("tau", "s", table, best, "/o", "/o/report.md"))
    lines = sweep.splitlines()
    assert "| trial | domain_set | target_srcc |" in lines
    assert "| mean_prob-tau0.05 | [1] | 0.5000 |" in lines
    assert "Best: mean_prob-tau0.04 -> [1, 3], target SRCC 0.6123, PLCC nan" in lines
    assert lines[-1] == "Report: /o/report.md"
    assert "oracle" not in sweep

    rounds = pd.DataFrame([{"round": 1, "added": 3, "target_srcc": 0.7}])
    gds = search_summary(SearchResult("gds", "g", table, {}, "/o", "/o/g.md", rounds=rounds))
    lines = gds.splitlines()
    assert "| round | added | target_srcc |" in lines and "| 1 | 3 | 0.7000 |" in lines
    assert "mean_prob-tau0.05" not in gds  # GDS shows its rounds, not every trial
    assert not any(line.startswith("Best:") for line in lines)  # no round improved
    assert "(GDS uses the target's labels: an oracle upper bound, not DGDS.)" in lines
    assert lines[-1] == "Report: /o/g.md"
