"""Ray Train's driver: arguments checked before any compute, validation over all workers, the
classifier on S3 and its checkpoint, the cluster's CPU check, the jobs' --help.

The cluster tests train resnet18 on 32x32 crops of a tiny KADID-style dataset (6 references x
3 types x 5 levels of 64x48 images, ingested once) with 1-CPU workers, so each epoch takes about
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
from dgqa_ray.data.ingest import ingest
from dgqa_ray.data.pipelines import read_dataset
from dgqa_ray.data.splits import split_by_reference
from tests.fixtures.datasets import build_kadid
from tests.fixtures.training import split_views as _datasets
from tests.fixtures.training import tiny_config

REPO = Path(__file__).resolve().parents[2]


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
    ingest(build_kadid(tmp_path / "kadid").open(), store)  # 2 refs x 2 x 3
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
