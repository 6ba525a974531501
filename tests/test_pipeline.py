"""The whole pipeline, submitted as a Ray job to a real head node with token auth.

`ray start --head` (token auth on, as Ray does by default for local clusters), then
`ray job submit -- python jobs/full_pipeline.py --config <tiny.yaml>`; then the MLflow store
must hold the selection and the metrics, and a rerun must reuse every finished stage.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgqa_ray.config import save_config
from tests.fixtures.configs import tiny_pipeline_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_job_submit_runs_the_pipeline_and_mlflow_holds_selection_and_metrics(ray_head, tmp_path):
    import mlflow

    address, env = ray_head
    cfg = tiny_pipeline_config(tmp_path)
    config_path = save_config(cfg, str(tmp_path / "tiny.yaml"))
    command = [
        str(Path(sys.executable).parent / "ray"),
        "job",
        "submit",
        f"--address={address}",
        f"--working-dir={REPO}",
        "--",
        "python",
        "jobs/full_pipeline.py",
        "--config",
        config_path,
    ]
    # Right after `ray start` the dashboard answers before its job agent has registered; Ray
    # says so with "No available agent" and nothing is submitted: try again.
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if "No available agent" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(3)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "succeeded" in output, output[-4000:]
    assert "Selected types (mean_prob)" in output
    assert "MLflow UI: mlflow ui --backend-store-uri sqlite:///" in output

    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    selected = parent.data.params["selected_types"].split(",")
    assert selected and all(1 <= int(t) <= 25 for t in selected)
    for key in ("target_srcc_baseline", "target_srcc_dgqa", "target_plcc_dgqa", "n_selected"):
        assert key in parent.data.metrics, key
    assert parent.data.metrics["n_selected"] == len(selected)
    children = {r.data.tags.get("mlflow.runName"): r for r in runs if r is not parent}
    assert {"classifier", "selection"} <= set(children)
    assert children["selection"].data.params["selected_types"] == ",".join(selected)
    regressors = [n for n in children if n and "regressor" in n]
    assert len(regressors) == 4  # 2 splits x (baseline, dgqa)
    for name in regressors:
        assert "target_srcc" in children[name].data.metrics

    # A rerun (in process, same config) reuses every stage: no training epoch runs again.
    from dgqa_ray.pipeline import run_pipeline

    lines: list[str] = []
    result = run_pipeline(cfg, log=lines.append)
    text = "\n".join(lines)
    assert "already ingested" in text
    assert "reusing the similarity table" in text
    assert [str(t) for t in result.selected] == selected
    assert Path(result.report_path).exists()
    assert "proxies" in Path(result.report_path).read_text()
