"""Ray Train: resume after a killed worker, validation over all workers, classifier, jobs.

The cluster tests train resnet18 on 32x32 crops of a tiny KADID-style dataset (6 references x
3 types x 5 levels of 64x48 images, ingested here) with 1-CPU workers, so each epoch takes about
a second and the time goes to Ray starting workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dgqa_ray import storage, train
from dgqa_ray.config import load_config
from dgqa_ray.data.ingest import ingest
from dgqa_ray.data.pipelines import read_dataset
from dgqa_ray.data.splits import split_by_reference
from tests.fixtures.datasets import build_kadid

REPO = Path(__file__).resolve().parents[1]
TRAIN_CPUS = 3  # two 1-CPU Train workers + one CPU for Ray Data's decoding tasks


def tiny_config(*overrides: str):
    return load_config(
        "demo",
        [
            "data.crop_size=32",
            "data.classifier_view=stored",
            "train.batch_size=8",
            "train.eval_batch_size=40",
            "train.num_workers=1",
            "train.cpus_per_worker=1",
            "train.epochs=1",
            "train.classifier_epochs=1",
            "train.max_failures=0",
            *overrides,
        ],
    )


# --------------------------------------------------------------------------------------------
# Without a cluster
# --------------------------------------------------------------------------------------------


def test_builder_refuses_bad_arguments_before_any_compute(tmp_path):
    cfg = tiny_config()
    datasets = {"train": object(), "val": object()}
    with pytest.raises(ValueError, match="task: invalid value 'ranker'; allowed: classifier"):
        train.build_trainer("ranker", cfg, datasets, "r", str(tmp_path))
    with pytest.raises(ValueError, match="dist_types: only the regressor"):
        train.build_trainer("classifier", cfg, datasets, "r", str(tmp_path), dist_types=[1])
    with pytest.raises(ValueError, match=r"dist_types: expected one or more KADID ids in 1\.\.25"):
        train.build_trainer("regressor", cfg, datasets, "r", str(tmp_path), dist_types=[0, 26])
    with pytest.raises(ValueError, match=r"datasets: expected keys 'train' and 'val'.*\['val'\]"):
        train.prepare_datasets("regressor", cfg, {"train": object()})


def test_injected_failure_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv(train.FAIL_AT_EPOCH_ENV, raising=False)
    assert train.InjectedFailure.from_env() is None
    monkeypatch.setenv(train.FAIL_AT_EPOCH_ENV, "2")
    with pytest.raises(ValueError, match=train.FAIL_MARKER_ENV):
        train.InjectedFailure.from_env()
    monkeypatch.setenv(train.FAIL_MARKER_ENV, str(tmp_path / "m"))
    assert train.InjectedFailure.from_env() == train.InjectedFailure(2, str(tmp_path / "m"))


@pytest.mark.parametrize("job", ["train_classifier.py", "train_regressor.py"])
def test_job_help_shows_the_commands(job):
    out = subprocess.run(
        [sys.executable, str(REPO / "jobs" / job), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"python jobs/{job}" in out
    assert f"ray job submit --working-dir . -- python jobs/{job}" in out
    assert "--run-name" in out and "--set" in out


# --------------------------------------------------------------------------------------------
# On a local Ray cluster
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_train(ray_local):
    """The session's local Ray, with at least ``TRAIN_CPUS`` logical CPUs for this module.

    Two 1-CPU Train workers on a 2-CPU cluster would leave Ray Data no CPU to decode with (the
    builder refuses that). The previous CPU count is restored afterwards.
    """
    import ray

    before = int(ray.cluster_resources().get("CPU", 0))
    if before < TRAIN_CPUS:
        ray.shutdown()
        ray.init(num_cpus=TRAIN_CPUS, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if before < TRAIN_CPUS:
        ray.shutdown()
        ray.init(num_cpus=before, include_dashboard=False, log_to_driver=False)


@pytest.fixture(scope="module")
def kadid_store(ray_train, tmp_path_factory):
    """(storage, split): a tiny KADID-10k ingested under ``storage`` and a 4/2 reference split."""
    root = tmp_path_factory.mktemp("train-data")
    built = build_kadid(root / "kadid", n_refs=6, types=(1, 2, 3), levels=(1, 2, 3, 4, 5))
    store = str(root / "store")
    ingest(built.open(), store, log=lambda line: None)
    split = split_by_reference(built.expected["ref_id"], train_fraction=0.6, seed=0)
    return store, split


def _datasets(store: str, split) -> dict:
    ds = read_dataset(store, "kadid10k")
    return {"train": split.select(ds, "train"), "val": split.select(ds, "test")}


@pytest.mark.slow
def test_killed_worker_resumes_from_the_checkpoint_and_a_rerun_continues(kadid_store, tmp_path):
    store, split = kadid_store
    marker = tmp_path / "crashed"
    cfg = tiny_config("train.epochs=2", "train.max_failures=1")
    failure = train.InjectedFailure(epoch=1, marker=str(marker))

    result = train.fit_regressor(
        cfg, _datasets(store, split), run_name="fault", storage_uri=store, failure=failure
    )
    assert marker.exists(), "the worker was not killed"
    # Epoch 0 ran in the first session; the worker died in epoch 1; FailureConfig restarted the
    # worker group, which resumed from epoch 0's checkpoint: epoch 1 ran once, in session 2.
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert [h["session"] for h in result.history] == [1, 2]
    assert result.last_checkpoint.endswith("checkpoints/fault/epoch_002")
    state = torch.load(
        Path(result.last_checkpoint) / train.STATE_FILE, map_location="cpu", weights_only=True
    )
    assert state["epoch"] == 2 and "optimizer" in state and "model" in state

    # Rerun with the same name and one more epoch: it resumes, the epoch count continues.
    more = tiny_config("train.epochs=3")
    again = train.fit_regressor(more, _datasets(store, split), run_name="fault", storage_uri=store)
    assert [h["epoch"] for h in again.history] == [0, 1, 2]
    assert [h["session"] for h in again.history] == [1, 2, 3]
    assert again.history[:2] == result.history
    assert again.epochs_trained_now == 1
    # Once complete, a rerun reuses it without training.
    reused = train.fit_regressor(more, _datasets(store, split), run_name="fault", storage_uri=store)
    assert reused.epochs_trained_now == 0 and reused.history == again.history
    assert reused.last_checkpoint == again.last_checkpoint
    assert reused.best_checkpoint == again.best_checkpoint
    # Another model, or other domains, under the same run name are refused before any compute.
    with pytest.raises(ValueError, match="run_name: run 'fault'.*holds checkpoints"):
        train.build_trainer("classifier", more, _datasets(store, split), "fault", store)
    with pytest.raises(ValueError, match=r"'dist_types': None.*'dist_types': \[1, 2\]"):
        train.fit_regressor(more, _datasets(store, split), "fault", store, dist_types=[2, 1])


@pytest.mark.slow
def test_two_workers_validate_on_the_gathered_predictions_of_both(kadid_store, capsys):
    store, _ = kadid_store
    from jobs.train_regressor import main

    code = main(
        [
            "--storage",
            store,
            "--dataset",
            "kadid10k",
            "--run-name",
            "two-workers",
            "--set",
            "data.crop_size=32",
            "--set",
            "train.batch_size=8",
            "--set",
            "train.num_workers=2",
            "--set",
            "train.cpus_per_worker=1",
            "--set",
            "train.epochs=1",
            "--set",
            "eval.train_fraction=0.6",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best checkpoint:" in out
    uri, progress = train.latest_progress(store, "two-workers")
    reported = progress["history"][-1]
    crops = pd.read_csv(Path(uri) / train.PREDICTIONS_FILE)

    # Both workers predicted a share, and together every validation image with all its crops.
    assert set(crops["rank"]) == {0, 1}
    per_image_crops = crops.groupby("image_id").size()
    assert (per_image_crops == 5).all()
    assert len(per_image_crops) == reported["val_images"] == 30

    # The reported SRCC/PLCC are those of all images at once (crops averaged per image) ...
    images = crops.groupby("image_id")[["predicted", "score"]].mean()
    assert reported["val_srcc"] == pytest.approx(
        stats.spearmanr(images["predicted"], images["score"]).statistic, abs=1e-9
    )
    assert reported["val_plcc"] == pytest.approx(
        stats.pearsonr(images["predicted"], images["score"]).statistic, abs=1e-9
    )
    # ... not the mean of the two workers' own SRCCs.
    per_rank = []
    for _, shard in crops.groupby("rank"):
        mine = shard.groupby("image_id")[["predicted", "score"]].mean()
        per_rank.append(stats.spearmanr(mine["predicted"], mine["score"]).statistic)
    assert abs(np.mean(per_rank) - reported["val_srcc"]) > 1e-6


@pytest.mark.slow
def test_classifier_trains_on_s3_and_its_checkpoint_loads(s3_server, ray_train, tmp_path):
    store = s3_server.unique_uri("train")
    ingest(build_kadid(tmp_path / "kadid").open(), store, log=lambda line: None)  # 2 refs x 2 x 3
    ds = read_dataset(store, "kadid10k")
    small = split_by_reference(ds.select_columns(["ref_id"]).to_pandas()["ref_id"], seed=0)
    cfg = tiny_config("model.num_classes=26")

    result = train.fit_classifier(
        cfg,
        {"train": small.select(ds, "train"), "val": small.select(ds, "test")},
        run_name="clf",
        storage_uri=store,
    )
    assert result.best_checkpoint.startswith(f"{store}/checkpoints/clf/epoch_")
    entry = result.final_metrics
    assert 0.0 <= entry["val_accuracy"] <= 1.0 and np.isfinite(entry["val_loss"])
    assert entry["val_crops"] == 6 * 5  # 1 val reference x 2 types x 3 levels, 5 crops each
    progress = json.loads(storage.read_text(f"{result.best_checkpoint}/{train.PROGRESS_FILE}"))
    assert progress["task"] == "classifier" and progress["num_classes"] == 26

    model, _ = train.load_trained_model(result.best_checkpoint, cfg)
    with torch.inference_mode():
        logits = model(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 26)


@pytest.mark.slow
def test_workers_that_take_every_cpu_are_refused(ray_train, kadid_store):
    store, split = kadid_store
    cfg = tiny_config("train.num_workers=3", "train.batch_size=9")
    with pytest.raises(ValueError, match="train.cpus_per_worker: 3 worker"):
        train.build_trainer("regressor", cfg, _datasets(store, split), "greedy", store)
