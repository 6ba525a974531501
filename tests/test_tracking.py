"""MLflow tracking: runs and nesting in a SQLite store, outages that never raise, no secrets."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from dgqa_ray.config import load_config
from dgqa_ray.tracking import (
    REDACTED,
    Tracker,
    looks_secret,
    mlflow_ui_command,
    redact,
    resolve_tracking_uri,
)

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _cfg(uri: str, run_name: str = "test-run", *extra: str):
    return load_config("demo", [f"tracking.tracking_uri={uri}", f"run_name={run_name}", *extra])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module: creating its tables takes a few seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'sub' / 'mlflow.db'}"


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _children(uri: str, parent_id: str):
    client = _client(uri)
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )


def _warnings(caplog) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "dgqa_ray.tracking" and r.levelno == logging.WARNING
    ]


# -- a working store ----------------------------------------------------------------------------


def test_parent_and_nested_runs_hold_params_metrics_and_artifacts(store, tmp_path):
    cfg = _cfg(store, "pipeline-1")
    chart = tmp_path / "similarity.png"
    chart.write_bytes(b"\x89PNG fake")
    with Tracker(cfg) as tracker:
        assert tracker.active and tracker.run_id
        tracker.log_config()
        tracker.set_tags({"dgqa.target": "embedded"})
        with tracker.nested("classifier") as run:
            for epoch in range(1, 4):
                run.log_metrics({"loss": 1.0 / epoch, "accuracy": 0.2 * epoch}, step=epoch)
        with tracker.nested("selection") as run:
            run.log_params({"rule": "mean_prob", "tau": 0.04, "selected": [1, 3, 10]})
            run.log_artifact(chart)
            run.log_dict({"selected": [1, 3, 10]}, "selection.json")
        tracker.log_metrics({"target_srcc": 0.5})

    client = _client(tracker.tracking_uri)
    parent = client.get_run(tracker.run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "pipeline-1"
    assert parent.data.params["train.lr"] == str(cfg.train.lr)
    assert parent.data.params["demo.target_types"] == "[1, 3, 10, 17, 18, 25]"
    assert parent.data.tags["dgqa.target"] == "embedded"
    assert parent.data.metrics["target_srcc"] == 0.5

    children = {r.info.run_name: r for r in _children(tracker.tracking_uri, tracker.run_id)}
    assert set(children) == {"classifier", "selection"}
    assert all(r.info.status == "FINISHED" for r in children.values())
    history = client.get_metric_history(children["classifier"].info.run_id, "loss")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 1.0), (2, 0.5), (3, 0.333)]
    selection = children["selection"]
    assert selection.data.params["selected"] == "[1, 3, 10]"
    listed = {f.path for f in client.list_artifacts(selection.info.run_id)}
    assert listed == {"similarity.png", "selection.json"}
    # Artifacts live next to the database, not in the working directory.
    assert "/sub/mlartifacts" in client.get_experiment(parent.info.experiment_id).artifact_location


def test_the_experiment_is_a_model_training_one_and_datasets_are_run_inputs(store, tmp_path):
    """MLflow 3's UI opens an experiment by its kind (runs, not GenAI traces); the runs list's
    Dataset column shows the run inputs, digest = the manifest's fingerprint."""
    from dgqa_ray.tracking import DIGEST_LENGTH, EXPERIMENT_KIND

    cfg = _cfg(store, "pipeline-kind")
    fingerprint = "0123456789abcdef" * 4
    with Tracker(cfg) as tracker, tracker.nested("regressor") as run:
        run.log_dataset(
            name="embedded_source",
            fingerprint=fingerprint,
            uri="s3://bucket/storage/embedded_source",
            rows=125,
            context="training",
            version="v1",
        )
    client = _client(tracker.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment_name)
    assert experiment.tags["mlflow.experimentKind"] == EXPERIMENT_KIND
    (entry,) = client.get_run(run.run_id).inputs.dataset_inputs
    assert entry.dataset.name == "embedded_source"
    assert entry.dataset.digest == fingerprint[:DIGEST_LENGTH]
    assert entry.dataset.source_type == "s3"
    assert '"num_rows": 125' in entry.dataset.profile and fingerprint in entry.dataset.profile
    assert [(t.key, t.value) for t in entry.tags] == [("mlflow.data.context", "training")]
    # An experiment made before (without a kind) gets one; one with a kind keeps it.
    client.create_experiment("older")
    client.create_experiment("genai", tags={"mlflow.experimentKind": "genai_development"})
    for name, kind in (("older", EXPERIMENT_KIND), ("genai", "genai_development")):
        with Tracker(_cfg(store, "again", f"tracking.experiment_name={name}")):
            pass
        assert client.get_experiment_by_name(name).tags["mlflow.experimentKind"] == kind


def test_a_failing_stage_marks_its_run_and_the_parent_failed(store):
    with pytest.raises(RuntimeError, match="boom"):
        with Tracker(_cfg(store, "pipeline-2")) as tracker:
            with tracker.nested("regressor-0"):
                raise RuntimeError("boom")
    client = _client(tracker.tracking_uri)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    (child,) = _children(tracker.tracking_uri, tracker.run_id)
    assert child.info.status == "FAILED"


def test_secrets_never_reach_mlflow(store, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    with Tracker(_cfg(store, "pipeline-3")) as tracker:
        tracker.log_config()
        tracker.log_params(
            {
                "aws_secret_access_key": SECRET,
                "note": f"copied from the shell: {SECRET}",
                "endpoint": "https://user:hunter2-pass@example.com:9000/bucket",
                "key_id": "AKIAIOSFODNN7EXAMPLE",
                "mlflow.password": "short",
            }
        )
        tracker.set_tags({"comment": SECRET})
        with tracker.nested("classifier", tags={"api_key": "abcdef123"}) as run:
            run.log_params({"storage": SECRET})
    client = _client(tracker.tracking_uri)
    runs = [client.get_run(tracker.run_id), *_children(tracker.tracking_uri, tracker.run_id)]
    stored = " ".join(f"{k}={v}" for r in runs for k, v in {**r.data.params, **r.data.tags}.items())
    for secret in (SECRET, "AKIAIOSFODNN7EXAMPLE", "hunter2-pass", "abcdef123", "short"):
        assert secret not in stored
    params = runs[0].data.params
    assert params["aws_secret_access_key"] == REDACTED and params["note"] == REDACTED
    assert params["endpoint"] == "https://user@example.com:9000/bucket"  # password dropped
    assert params["storage"] == "dgqa_output/storage"  # the config's own values are kept


def test_a_param_logged_twice_keeps_its_first_value_without_disabling_tracking(store, caplog):
    with Tracker(_cfg(store, "pipeline-4")) as tracker:
        tracker.log_params({"tau": 0.04})
        tracker.log_params({"tau": 0.04})  # same value: silently skipped
        tracker.log_params({"tau": 0.05})
        assert tracker.active
        tracker.log_metrics({"srcc": 0.7})
    assert len(_warnings(caplog)) == 1 and "already" in _warnings(caplog)[0].getMessage()
    run = _client(tracker.tracking_uri).get_run(tracker.run_id)
    assert run.data.params["tau"] == "0.04" and run.data.metrics["srcc"] == 0.7


def test_non_numeric_metrics_are_a_caller_error(store):
    with Tracker(_cfg(store, "pipeline-5")) as tracker:
        with pytest.raises(ValueError, match=r"metrics\['loss'\]: expected a number"):
            tracker.log_metrics({"loss": "low"})


# -- outages --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def _exercise(tracker: Tracker, tmp_path) -> None:
    """Every kind of call a pipeline makes; none may raise."""
    artifact = tmp_path / "table.csv"
    artifact.write_text("a,b\n1,2\n")
    tracker.log_config()
    tracker.set_tags({"stage": "x"})
    with tracker.nested("classifier") as run:
        for epoch in range(3):
            run.log_metrics({"loss": 1.0}, step=epoch)
        run.log_artifact(artifact)
        run.log_text("s3://bucket/ckpt", "checkpoints.txt")
    tracker.log_metrics({"srcc": 0.5})


def test_an_unreachable_server_logs_one_warning_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    started = time.monotonic()
    with Tracker(_cfg(f"http://127.0.0.1:{_closed_port()}")) as tracker:
        _exercise(tracker, tmp_path)
    assert time.monotonic() - started < 60
    assert not tracker.active and tracker.run_id is None and "start" in tracker.failure
    assert len(_warnings(caplog)) == 1


def test_an_unwritable_store_logs_one_warning_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    for uri in (f"sqlite:///{blocker}/mlflow.db", "sqlite:////proc/dgqa-no-such/mlflow.db"):
        caplog.clear()
        with Tracker(_cfg(uri)) as tracker:
            _exercise(tracker, tmp_path)
        assert not tracker.active and len(_warnings(caplog)) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_folder_logs_one_warning(tmp_path, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with Tracker(_cfg(f"sqlite:///{folder}/mlflow.db")) as tracker:
            _exercise(tracker, tmp_path)
    finally:
        folder.chmod(0o700)
    assert not tracker.active and len(_warnings(caplog)) == 1


def test_a_failure_mid_run_turns_the_tracker_off_after_one_warning(store, tmp_path, caplog):
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise OSError("disk I/O error")

    with Tracker(_cfg(store, "pipeline-6")) as tracker:
        assert tracker.active
        tracker._client.log_batch = broken  # the disk fails after the run started
        tracker.log_metrics({"loss": 1.0}, step=1)
        assert not tracker.active and "disk I/O error" in tracker.failure
        _exercise(tracker, tmp_path)
    assert len(calls) == 1  # nothing reached MLflow after the failure
    assert len(_warnings(caplog)) == 1


def test_disabled_tracking_touches_nothing(tmp_path, caplog):
    db = tmp_path / "never" / "mlflow.db"
    with Tracker(_cfg(f"sqlite:///{db}", "off", "tracking.enabled=false")) as tracker:
        _exercise(tracker, tmp_path)
    assert tracker.run_id is None and not db.parent.exists() and not _warnings(caplog)
    with pytest.raises(ValueError, match="expected a number"):  # a caller bug shows anyway
        tracker.log_metrics({"loss": [1.0]})


# -- helpers ------------------------------------------------------------------------------------


def test_ui_command_points_at_the_store_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg("sqlite:///dgqa_output/mlflow.db")
    assert mlflow_ui_command(cfg) == (
        f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/dgqa_output/mlflow.db"
    )
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert mlflow_ui_command(_cfg("http://mlflow.internal:5000")) == (
        "python -m webbrowser http://mlflow.internal:5000"
    )
    assert mlflow_ui_command(_cfg("postgresql://db.internal/mlflow")).endswith(
        "--backend-store-uri postgresql://db.internal/mlflow"
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("MLFLOW_TRACKING_PASSWORD", True),
        ("RAY_AUTH_TOKEN", True),
        ("api-key", True),
        ("train.lr", False),
        ("demo.max_types_per_image", False),
        ("PWD", False),
    ],
)
def test_secret_names(name, secret):
    assert looks_secret(name) is secret


def test_redact_keeps_ordinary_values():
    assert redact("storage", "s3://bucket/prefix", []) == "s3://bucket/prefix"
    assert redact("selected", [1, 3, 10], []) == "[1, 3, 10]"
    assert redact("note", "token=xyz123456 in text", ["xyz123456"]) == REDACTED
