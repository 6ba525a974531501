"""The tau sweep: its trials, and the job run as a user runs it, killed and resumed.

The slow test starts ``jobs/tune_tau.py`` as a subprocess (with its own local Ray, as
``python jobs/tune_tau.py`` does) on the package's tiny config (``search_setup``), whose data,
classifier and similarity table are made once and then reused; MLflow is a SQLite store in the
test's folder.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dgqa_ray.config import load_config
from dgqa_ray.search.tau import sweep_points
from tests.search.helpers import REPO, run_job, trial_runs

# -- plain logic ------------------------------------------------------------------------------


def test_default_tau_grid_brackets_one_over_k_and_adds_one_vote_trial():
    cfg = load_config("demo")
    points = sweep_points(cfg)
    taus = [p["tau"] for p in points if p["rule"] == "mean_prob"]
    assert 1 / 25 in taus and min(taus) < 1 / 25 < max(taus)
    assert [p["rule"] for p in points].count("topk_vote") == 1
    assert len({p["key"] for p in points}) == len(points)  # keys name checkpoints: unique


def test_sweep_points_follow_the_rules_asked_for():
    cfg = load_config("demo", ["search.rules=[mean_prob]", "search.taus=[0.02,0.05]"])
    assert [(p["rule"], p["tau"]) for p in sweep_points(cfg)] == [
        ("mean_prob", 0.02),
        ("mean_prob", 0.05),
    ]


# -- the job, end to end ----------------------------------------------------------------------


def _terminated_in_state(experiment: Path) -> int:
    """Trials Tune's saved experiment state records as finished (what a restore reads)."""
    return sum(p.read_text().count("TERMINATED") for p in experiment.glob("experiment_state*.json"))


def _finished_trials(experiment: Path) -> dict[str, int]:
    """Tune's own record: trial folder -> number of results reported, for trials that
    reported a target SRCC."""
    found = {}
    for result in experiment.glob("*/result.json"):
        lines = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        if any("target_srcc" in x for x in lines):
            found[result.parent.name] = len(lines)
    return found


@pytest.mark.slow
def test_tau_sweep_killed_part_way_resumes_and_mlflow_holds_one_run_per_trial(search_setup):
    tmp, cfg, path = search_setup
    taus = [0.03, 0.04, 0.05]
    args = ["--name", "sweep", "--set", f"search.taus={taus}"]
    experiment = tmp / "storage" / "tune" / "sweep"
    # Tune saves its experiment state every second (its "auto" period can lag behind fast
    # trials), so the kill lands while a trial is still left to resume.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", TUNE_GLOBAL_CHECKPOINT_S="1")
    env.pop("RAY_ADDRESS", None)
    log = tmp / "first_attempt.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            [sys.executable, str(REPO / "jobs" / "tune_tau.py"), "--config", path, *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes its local Ray too
        )
        try:
            deadline = time.monotonic() + 600
            while not _terminated_in_state(experiment) and time.monotonic() < deadline:
                assert first.poll() is None, log.read_text()[-5000:]
                time.sleep(1)
            before = _finished_trials(experiment)
            assert before, "no trial finished within 10 minutes"
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    # 3 logical CPUs, 1 per trial and 1 for Ray Data: two trials ran at once.
    assert "up to 2 at once" in log.read_text()
    assert len(before) < 3, "every trial had finished: nothing left to resume"

    run_job("tune_tau.py", path, *args)
    after = _finished_trials(experiment)
    assert len(after) == 3
    for trial, reports in before.items():
        assert after[trial] == reports, f"{trial} reported again after the restart"

    out = tmp / "out" / "runs" / "tinysearch" / "search" / "sweep"
    table = pd.read_csv(out / "trials.csv")
    assert sorted(table["tau"]) == taus and set(table["rule"]) == {"mean_prob"}
    # A higher tau keeps a subset of the types a lower one keeps.
    sets = [set(json.loads(s)) for s in table.sort_values("tau")["domain_set"]]
    assert sets[0] >= sets[1] >= sets[2]
    assert set(table["status"]) <= {"done", "empty set"}
    scored = table[table["status"] == "done"]
    assert len(scored) >= 1 and scored["target_srcc"].between(-1, 1).all()
    assert (out / "srcc_vs_tau.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "# Tau sweep `sweep`" in report and "the form of the paper's Table 2" in report

    # One parent run (reopened by the rerun), one nested run per trial, none twice.
    parent, children = trial_runs(cfg, "sweep")
    assert parent.info.status == "FINISHED"
    assert "best_target_srcc" in parent.data.metrics
    by_tau = {float(c.data.params["tau"]): c for c in children}
    assert sorted(by_tau) == taus and len(children) == 3
    for tau, run in by_tau.items():
        row = table[table["tau"] == tau].iloc[0]
        assert run.data.params["rule"] == "mean_prob"
        assert run.data.params["domain_set"] == row["domain_set"]
        assert run.data.params["domain_key"] == row["domain_key"]
        if row["status"] == "done":
            assert math.isclose(run.data.metrics["target_srcc"], row["target_srcc"], abs_tol=1e-9)
            assert "target_plcc" in run.data.metrics
