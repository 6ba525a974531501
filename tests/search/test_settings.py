"""The config's ``search`` section: bad values are refused before any search starts (no Ray)."""

from __future__ import annotations

import pytest

from dgqa_ray.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search.taus=[0.0]", r"search.taus: expected values in \(0, 1\)"),
        ("search.rules=[best]", "search.rules: invalid rule 'best'"),
        ("search.gds_candidates=[0,3]", "search.gds_candidates"),
        ("search.splits=9", "search.splits: 9 exceeds eval.n_splits 2"),
        ("search.gds_start=full", "search.gds_start"),
    ],
)
def test_bad_search_settings_are_refused_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", [override])
