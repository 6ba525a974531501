"""The whole pipeline, submitted as a Ray job to a real head node with token auth.

`ray start --head` (token auth on, as Ray does by default for local clusters), then
`ray job submit -- python jobs/full_pipeline.py --config <tiny.yaml>`; then the MLflow store
must hold the selection and the metrics, and a rerun must reuse every finished stage.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dgqa_ray.config import load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_pipeline_config(tmp: Path):
    """The demo preset shrunk to seconds of work per stage, everything under ``tmp``."""
    return load_config(
        "demo",
        [
            f"storage={tmp / 'storage'}",
            f"output_dir={tmp / 'out'}",
            "run_name=tiny",
            f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
            "data.crop_size=32",
            "data.eval_crops=2",
            "data.embedded_classifier_refs=6",
            "data.embedded_classifier_types_per_ref=5",
            "data.embedded_source_refs=3",
            "data.embedded_target_images=12",
            "train.epochs=1",
            "train.classifier_epochs=1",
            "train.batch_size=16",
            "train.eval_batch_size=64",
            "train.cpus_per_worker=1",
            "eval.n_splits=2",
            "eval.train_fraction=0.67",
        ],
    )


def _kill_processes_mentioning(text: str) -> None:
    """Stop one Ray cluster's processes (found by its own temp dir in their command lines)
    without touching any other Ray instance on the machine, as ``ray stop`` would."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def ray_head():
    """A Ray head node started with the CLI; its dashboard address; stopped afterwards."""
    # A short temp dir: Ray's Unix socket paths live under it (limit ~107 characters).
    temp_dir = tempfile.mkdtemp(prefix="dgqa-ray-", dir="/tmp")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Every port of this head is free and its own: other Ray instances on the machine (the
    # session's local cluster) hold the defaults, and the dashboard agent's listen port
    # clashing leaves job submission with "No available agent" forever.
    gcs, dashboard, agent = _free_port(), _free_port(), _free_port()
    ray = str(Path(sys.executable).parent / "ray")
    started = subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={gcs}",
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--dashboard-agent-listen-port={agent}",
            "--num-cpus=3",
            f"--temp-dir={temp_dir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        _kill_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


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
