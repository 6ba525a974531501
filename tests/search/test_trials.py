"""A search's trials: how many run at once, and the domain set each trains on (no Ray)."""

from __future__ import annotations

import pandas as pd
import pytest

from dgqa_ray.config import load_config
from dgqa_ray.search.trials import trial_concurrency, trial_types
from dgqa_ray.selection import select_domains


@pytest.mark.parametrize(
    ("overrides", "resources", "expected"),
    [
        (["train.cpus_per_worker=1"], {"CPU": 3.0}, 2),  # 2 trials + 1 CPU for Ray Data
        (["train.cpus_per_worker=2"], {"CPU": 3.0}, 1),
        (["train.cpus_per_worker=2"], {"CPU": 17.0}, 8),
        (["train.cpus_per_worker=1"], {"CPU": 1.0}, 1),  # never below one
        (["train.use_gpu=true", "train.cpus_per_worker=4"], {"CPU": 64.0, "GPU": 2.0}, 2),
        (["search.max_concurrent=5"], {"CPU": 2.0}, 5),
    ],
)
def test_trial_concurrency_follows_what_a_trial_reserves(overrides, resources, expected):
    assert trial_concurrency(load_config("demo", overrides), resources) == expected


def _table(similarity: dict[int, float]) -> pd.DataFrame:
    rows = []
    for t in range(1, 26):
        rows.append(
            {
                "dist_type": t,
                "name": f"t{t}",
                "source_domain": True,
                "mean_prob": similarity.get(t, 0.01),
                "similarity": similarity.get(t, 0.01),
                "votes": 10 if t in similarity else 0,
                "n_images": 20,
                "top_k": 4,
            }
        )
    return pd.DataFrame(rows)


def test_a_trial_selects_with_its_own_rule_and_tau_or_takes_its_set():
    cfg = load_config("demo")
    table = _table({1: 0.2, 3: 0.06, 9: 0.045})
    assert trial_types({"rule": "mean_prob", "tau": 0.05}, table, cfg) == [1, 3]
    assert trial_types({"rule": "mean_prob", "tau": 0.04}, table, cfg) == [1, 3, 9]
    expected = select_domains(table, rule="topk_vote", k=4, share=0.04).selected
    assert trial_types({"rule": "topk_vote", "tau": None}, table, cfg) == list(expected)
    assert trial_types({"types": [9, 1]}, table, cfg) == [1, 9]
