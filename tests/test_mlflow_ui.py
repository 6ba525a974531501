"""MLflow's own UI, in a real headless browser, shows what the pipeline records.

The runs are logged the pipeline's way (``tracking.Tracker``: a parent run with nested stage
runs, per-epoch metrics, an MLflow model and dataset inputs); ``mlflow server`` serves the
store; headless Chromium (Debian's package, installed by ``browser.chromium`` when missing)
loads the experiment page as a user opens it and the rendered page must show the runs, the
nested stages and the logged model.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from dgqa_ray.config import load_config
from tests.fixtures.browser import dump_dom, screenshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_a_run(uri: str):
    """One pipeline-shaped parent run: classifier and regressor stages with epoch metrics, the
    regressor's MLflow model and its dataset inputs."""
    import torch

    from dgqa_ray.inference import preprocessed_model
    from dgqa_ray.models import create_regressor
    from dgqa_ray.tracking import Tracker

    cfg = load_config(
        "demo", [f"tracking.tracking_uri={uri}", "run_name=ui-demo", "data.crop_size=32"]
    )
    torch.manual_seed(0)
    with Tracker(cfg) as tracker:
        tracker.log_config()
        with tracker.nested("classifier") as run:
            for epoch in range(3):
                run.log_metrics({"train_loss": 3.0 - epoch, "val_accuracy": 0.2 * epoch}, epoch)
        with tracker.nested("ui-demo-regressor-dgqa-1-3-split0") as run:
            for epoch in range(3):
                run.log_metrics({"train_loss": 1.0 / (epoch + 1), "val_srcc": 0.3 * epoch}, epoch)
            run.log_metrics({"target_srcc": 0.41})
            run.log_dataset(
                name="embedded_source",
                fingerprint="ab" * 32,
                uri="/data/storage/embedded_source",
                rows=125,
                context="training",
            )
            model_uri = run.log_model(
                preprocessed_model(create_regressor(cfg.model, load_weights=False)),
                example=np.zeros((2, 3, 32, 32), dtype=np.uint8),
                metadata={"task": "regressor", "backbone": cfg.model.backbone, "crop_size": 32},
            )
        tracker.log_metrics({"target_srcc_dgqa": 0.41})
    assert model_uri is not None, tracker.failure
    return tracker, run


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory):
    """``mlflow server`` on a store holding one logged pipeline run; yields (url, tracker,
    regressor run)."""
    tmp = tmp_path_factory.mktemp("mlflow_ui")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracker, run = _log_a_run(uri)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=open(tmp / "server.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        env=dict(os.environ, MLFLOW_TRACKING_URI=uri),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail("mlflow server did not come up:\n" + (tmp / "server.log").read_text())
        time.sleep(0.5)
    try:
        yield url, tracker, run, tmp
    finally:
        server.terminate()
        server.wait(timeout=30)


def _text(dom: str) -> str:
    """The page's visible text: tags and style sheets dropped, whitespace folded."""
    dom = re.sub(r"<style[^>]*>.*?</style>", " ", dom, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_link_the_pipeline_prints_opens_the_runs_with_their_stages_and_model(
    mlflow_ui, chromium
):
    from dgqa_ray.tracking import UI_ADDRESS

    url, tracker, run, tmp = mlflow_ui
    printed = tracker.experiment_url()  # what the pipeline's summary says to open
    assert printed.startswith(UI_ADDRESS + "/#/experiments/")
    page = printed.replace(UI_ADDRESS, url)
    text = _text(dump_dom(chromium, page))
    # The runs view (not the GenAI traces overview): the parent run, and its two nested
    # stages counted with it.
    assert "Runs" in text and "Run Name" in text, text[:3000]
    assert "ui-demo" in text and "3 matching runs" in text, text[:3000]
    assert "Traces 0" not in text, text[:3000]
    assert screenshot(chromium, page, tmp / "runs.png").stat().st_size > 10_000

    # A stage's own page: nested under the pipeline run, its metrics, its logged model and its
    # dataset input with the manifest's digest.
    run_page = page.replace("?", f"/runs/{run.run_id}?")
    text = _text(dump_dom(chromium, run_page))
    assert "ui-demo-regressor-dgqa-1-3-split0" in text, text[:3000]
    assert "Parent run ui-demo" in text, text[:3000]
    for metric in ("train_loss", "val_srcc", "target_srcc 0.41"):
        assert metric in text, (metric, text[:3000])
    assert "Logged models (1)" in text and "model Ready" in text, text[:3000]
    assert "embedded_source (" + "ab" * 16 + ") training" in text, text[:3000]
