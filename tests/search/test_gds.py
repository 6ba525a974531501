"""Greedy domain selection: the job run as a user runs it, on S3, over two rounds.

The slow test starts ``jobs/gds_search.py`` as a subprocess (with its own local Ray) on the
package's tiny config (``search_setup``). It is the first job on that config (files run in
name order, test_tau.py's job after it) and checks that its classifier trained.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tests.search.helpers import assert_quiet_console, run_job, trial_runs


@pytest.mark.slow
def test_gds_search_runs_two_rounds_over_two_candidates_on_s3(search_setup, s3_server):
    tmp, cfg, path = search_setup
    store = s3_server.unique_uri("gds")  # datasets, checkpoints and Tune's experiments on S3
    done = run_job(
        "gds_search.py",
        path,
        "--set",
        f"storage={store}",
        "--name",
        "greedy",
        "--set",
        "search.gds_candidates=[1,3]",
        "--set",
        "search.gds_max_rounds=2",
        # ASHA's path (per-epoch reports, the scheduler); with 1 epoch it stops no trial.
        "--set",
        "search.early_stop=true",
    )
    # It trained the classifier (Ray Train, Ray Data): none of their INFO lines on the console.
    assert "[classifier tinysearch-classifier] epoch 1/" in done.stdout + done.stderr
    assert_quiet_console(done.stdout + done.stderr)
    out = tmp / "out" / "runs" / "tinysearch" / "search" / "greedy"
    rounds = pd.read_csv(out / "rounds.csv")
    trials = pd.read_csv(out / "trials.csv")
    assert list(rounds["round"]) == [1, 2]
    assert sorted(trials.groupby("round").size().tolist()) == [1, 2]  # 2 candidates, then 1
    first = rounds.iloc[0]
    best_first = trials[trials["round"] == 1]["target_srcc"].max()
    assert math.isclose(first["target_srcc"], best_first)
    # Round 2 grows round 1's winner by one type.
    second_sets = [set(json.loads(s)) for s in trials[trials["round"] == 2]["domain_set"]]
    assert all(len(s) == 2 and int(first["added"]) in s for s in second_sets)
    assert "oracle upper bound" in (out / "report.md").read_text()
    experiments = s3_server.client().list_objects_v2(
        Bucket=s3_server.bucket, Prefix=store.split("/", 3)[3] + "/tune/greedy-round2/"
    )
    assert any(o["Key"].endswith("tuner.pkl") for o in experiments.get("Contents", []))

    parent, children = trial_runs(cfg, "greedy")
    assert parent.data.tags.get("dgqa.search") == "gds"
    assert len(children) == 3
    assert {c.data.params["round"] for c in children} == {"1", "2"}
    assert all("target_srcc" in c.data.metrics for c in children)
