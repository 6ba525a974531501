"""Ray Tune searches: the tau sweep and greedy domain selection, run as a user runs them.

The slow tests start the jobs as subprocesses (each with its own local Ray, as
``python jobs/tune_tau.py`` does) on one tiny config whose data, classifier and similarity
table are made once and then reused; MLflow is a SQLite store in the test's folder.
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

from dgqa_ray.config import ConfigError, PipelineConfig, load_config, save_config
from dgqa_ray.reports import paper_selections, selection_matrix
from dgqa_ray.selection import select_domains
from dgqa_ray.tune import sweep_points, trial_concurrency, trial_types

REPO = Path(__file__).resolve().parents[1]


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


def test_selection_matrix_has_the_layout_of_table_2():
    rows = paper_selections(REPO / "dgqa_ray" / "reference" / "paper_table2_selected_domains.csv")
    matrix = selection_matrix({"ours: livec": [1, 3, 9], **rows})
    assert list(matrix.columns) == ["target", *(f"#{t}" for t in range(1, 26)), "n"]
    livec = matrix[matrix["target"] == "paper: livec"].iloc[0]
    assert [t for t in range(1, 26) if livec[f"#{t}"] == "x"] == [1, 3, 10, 17, 18, 25]
    assert matrix.iloc[0]["n"] == 3
    with pytest.raises(ValueError, match=r"selections\['bad'\]: type ids out of 1..25: \[26\]"):
        selection_matrix({"bad": [26]})


# -- the jobs, end to end ---------------------------------------------------------------------


def _tiny_search_config(tmp: Path) -> PipelineConfig:
    from tests.fixtures.configs import tiny_pipeline_config

    values = tiny_pipeline_config(tmp).to_dict()
    values["run_name"] = "tinysearch"
    values["train"]["cpus_per_worker"] = 1
    values["search"] = {"splits": 1, "epochs": 1, "rules": ["mean_prob"]}
    return PipelineConfig.from_dict(values)


@pytest.fixture(scope="module")
def search_setup(tmp_path_factory):
    """A tiny config saved as YAML; its stages are made by the first job that runs."""
    tmp = tmp_path_factory.mktemp("search")
    cfg = _tiny_search_config(tmp)
    path = save_config(cfg, str(tmp / "tiny.yaml"))
    return tmp, cfg, path


def _job(script: str, config: str, *args: str, timeout: int = 900):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / script), "--config", config, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def _trial_runs(cfg, parent_name: str):
    """The parent run named ``parent_name`` and its nested runs, from the test's MLflow."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlflow.runName") == parent_name]
    assert len(parents) == 1, [r.data.tags.get("mlflow.runName") for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


RAY_NOISE = (
    "Execution plan",  # Ray Data, driver and SplitCoordinator
    "Starting execution of Dataset",
    "Parquet dataset sampling",
    "Total Progress",
    "Checkpoint successfully created",  # Ray Train worker
    "Reporting training result",
    "TrainingReport(",
    "Started training worker group",  # Ray Train controller
    "A new progress UI is available",
    "RayDeprecationWarning",
)


def assert_quiet_console(output: str) -> None:
    """A job's console without --verbose: the project's lines, none of Ray's INFO logs."""
    loud = [noise for noise in RAY_NOISE if noise in output]
    assert not loud, f"Ray's logs on a quiet console: {loud}\n{output[-3000:]}"
    assert "Ray's own logs: " in output or "[classifier" in output, output[-2000:]


@pytest.mark.slow
def test_gds_search_runs_two_rounds_over_two_candidates_on_s3(search_setup, s3_server):
    tmp, cfg, path = search_setup
    store = s3_server.unique_uri("gds")  # datasets, checkpoints and Tune's experiments on S3
    done = _job(
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

    parent, children = _trial_runs(cfg, "greedy")
    assert parent.data.tags.get("dgqa.search") == "gds"
    assert len(children) == 3
    assert {c.data.params["round"] for c in children} == {"1", "2"}
    assert all("target_srcc" in c.data.metrics for c in children)


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

    _job("tune_tau.py", path, *args)
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
    parent, children = _trial_runs(cfg, "sweep")
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
