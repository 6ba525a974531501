"""What the end-to-end search tests share: the tiny config, running a job as a user runs it,
the MLflow runs it left, and the check that its console is quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dgqa_ray.config import PipelineConfig

REPO = Path(__file__).resolve().parents[2]


def tiny_search_config(tmp: Path) -> PipelineConfig:
    from tests.fixtures.configs import tiny_pipeline_config

    values = tiny_pipeline_config(tmp).to_dict()
    values["run_name"] = "tinysearch"
    values["train"]["cpus_per_worker"] = 1
    values["search"] = {"splits": 1, "epochs": 1, "rules": ["mean_prob"]}
    return PipelineConfig.from_dict(values)


def run_job(script: str, config: str, *args: str, timeout: int = 900):
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


def trial_runs(cfg, parent_name: str):
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
