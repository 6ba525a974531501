"""Scoring new images (``dgqa_ray.scoring``, ``jobs/score.py``).

The listing, the model loading and the output here; the end-to-end check with a pipeline run's
DGQA regressor (by checkpoint through ``ray job submit``, by MLflow model URI over an S3 prefix,
identical scores) is ``check_scoring``, called from the two-node rehearsal in
``tests/test_cluster.py``, which already trains such a regressor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dgqa_ray.config import load_config
from dgqa_ray.scoring import (
    ScoringError,
    is_mlflow_uri,
    list_images,
    load_scoring_model,
    score_images,
    unreadable_uri,
    write_table,
)
from tests.fixtures.datasets import build_custom


def _regressor_checkpoint(folder: Path, *, backbone: str = "resnet18", crop: int = 32, seed=0):
    """A checkpoint folder as ``train/worker.py`` writes it, with random regressor weights."""
    from dgqa_ray.models import create_regressor
    from dgqa_ray.train import PROGRESS_FILE, STATE_FILE

    cfg = load_config("demo", [f"model.backbone={backbone}"])
    torch.manual_seed(seed)
    model = create_regressor(cfg.model, load_weights=False)
    folder.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, folder / STATE_FILE)
    progress = {"task": "regressor", "backbone": backbone, "crop_size": crop}
    (folder / PROGRESS_FILE).write_text(json.dumps(progress))
    return str(folder), model.state_dict()


def test_a_folder_a_table_and_an_s3_prefix_list_the_same_images(tmp_path, s3_server):
    built = build_custom(tmp_path / "mine", n_images=5)
    folder = list_images(str(Path(built.folder) / "photos"))
    # A folder's ids are the paths below it, sorted; a table's are the paths as written.
    assert folder["image_id"].tolist() == sorted(
        p.removeprefix("photos/") for p in pd.read_csv(built.root)["path"]
    )
    table = list_images(built.root)
    assert table["image_id"].tolist() == pd.read_csv(built.root)["path"].tolist()
    assert sorted(Path(p).name for p in table["path"]) == sorted(
        Path(p).name for p in folder["path"]
    )
    remote = built.upload(s3_server.unique_uri("listing"))
    prefix = list_images(remote.folder + "/photos")
    assert prefix["image_id"].tolist() == folder["image_id"].tolist()
    assert all(p.startswith("s3://") for p in prefix["path"])
    assert list_images(remote.root)["image_id"].tolist() == table["image_id"].tolist()


def test_what_cannot_be_listed_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (str(tmp_path / "nowhere"), "no folder or prefix at"),
        (str(tmp_path / "empty"), "no images"),
        (str(tmp_path / "notes.txt"), "is a file"),
        (str(tmp_path / "missing.csv"), "no table at"),
        ("  ", "expected a folder"),
    ]
    for spec, says in cases:
        with pytest.raises(ScoringError, match=says):
            list_images(spec)


def test_scores_tables_are_written_whole_as_csv_or_parquet_locally_and_on_s3(tmp_path, s3_server):
    from dgqa_ray import storage

    frame = pd.DataFrame(
        {"image_id": ["a", "b"], "path": ["/x/a.png", "/x/b.png"], "predicted": [1.5, 7.25]}
    )
    for out in (
        str(tmp_path / "s.csv"),
        str(tmp_path / "deep" / "s.parquet"),
        s3_server.unique_uri("scores") + "/s.parquet",
    ):
        written = write_table(frame, out)
        data = storage.read_bytes(written)
        back = pd.read_csv(tmp_path / "s.csv") if out.endswith(".csv") else None
        if back is None:
            import io

            back = pd.read_parquet(io.BytesIO(data))
        pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(ScoringError, match="must end in .csv, .parquet or .pq"):
        write_table(frame, str(tmp_path / "s.json"))
    assert unreadable_uri("s3://b/run/scores.parquet") == "s3://b/run/scores.unreadable.csv"


def test_a_checkpoint_brings_its_own_backbone_and_crop(tmp_path):
    uri, state = _regressor_checkpoint(tmp_path / "run" / "epoch_002", crop=48)
    cfg = load_config("demo", ["model.backbone=mobilenet_v3_small", "data.crop_size=64"])
    model = load_scoring_model(uri, cfg)
    assert model.model_cfg.backbone == "resnet18" and model.crop_size == 48
    assert model.kind == "checkpoint" and not is_mlflow_uri(uri)
    assert set(model.state) == set(state)
    assert all(torch.equal(model.state[k], state[k]) for k in state)
    # A progress.json that names another backbone than the weights: refused, named.
    progress = Path(uri) / "progress.json"
    progress.write_text(json.dumps({"task": "regressor", "backbone": "resnet34"}))
    with pytest.raises(ScoringError, match="does not fit a resnet34 quality regressor"):
        load_scoring_model(uri, cfg)


def test_mlflow_models_are_loaded_to_the_weights_that_were_logged(tmp_path, monkeypatch):
    """A model logged the pipeline's way comes back, by run and by registry, as the same
    weights, with its backbone and crop from its metadata; neither call leaves its store in
    the environment (``MLFLOW_TRACKING_URI``), where every later job would inherit it."""
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from dgqa_ray.inference import preprocessed_model
    from dgqa_ray.models import create_regressor
    from dgqa_ray.tracking import Tracker

    cfg = load_config(
        "demo",
        [
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "model.backbone=mobilenet_v3_small",
            "data.crop_size=40",
        ],
    )
    torch.manual_seed(3)
    network = create_regressor(cfg.model, load_weights=False)
    example = np.zeros((2, 3, 40, 40), dtype=np.uint8)
    metadata = {"task": "regressor", "backbone": "mobilenet_v3_small", "crop_size": 40}
    with Tracker(cfg) as tracker, tracker.nested("regressor") as run:
        uri = run.log_model(
            preprocessed_model(network), example=example, metadata=metadata, registered_name="m"
        )
    assert uri == f"runs:/{run.run_id}/model" and is_mlflow_uri(uri)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    other = load_config("demo", [f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    for name in (uri, "models:/m/1"):
        model = load_scoring_model(name, other)
        assert model.kind == "mlflow" and model.crop_size == 40
        assert model.model_cfg.backbone == "mobilenet_v3_small"
        expected = network.state_dict()
        assert set(model.state) == set(expected), name
        assert all(torch.equal(model.state[k], expected[k]) for k in expected), name
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_unreadable_images_are_skipped_and_listed_below_the_share_and_fatal_above(
    tmp_path, ray_local, capsys
):
    from dgqa_ray.inference import predict_quality
    from dgqa_ray.pipeline import inference_options

    built = build_custom(tmp_path / "mine", n_images=9, size=(48, 40))
    photos = Path(built.folder) / "photos"
    good = list_images(str(photos))
    shutil.copy(good["path"].iloc[0], photos / "truncated.jpg")
    data = (photos / "truncated.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (photos / "not_an_image.png").write_bytes(b"plain text, not a PNG")
    uri, _ = _regressor_checkpoint(tmp_path / "ckpt", crop=32)
    cfg = load_config("demo", ["data.eval_crops=2", "train.cpus_per_worker=1"])
    model = load_scoring_model(uri, cfg)
    images = list_images(str(photos))
    assert len(images) == 11
    capsys.readouterr()
    result = score_images(model, images, cfg, max_bad_fraction=0.2)
    lines = capsys.readouterr().out.splitlines()  # the project's logger prints to stdout
    assert sorted(result.unreadable["image_id"]) == ["not_an_image.png", "truncated.jpg"]
    assert all("does not decode" in e for e in result.unreadable["error"])
    assert result.scores["image_id"].tolist() == good["image_id"].tolist()
    assert (result.scores["crops"] == 2).all()
    assert result.scores["predicted"].notna().all()
    assert any("skipping 2 unreadable image(s)" in line for line in lines), lines
    # The same images through the pipeline's own target evaluation path: the same scores.
    import ray.data

    rows = [
        {"image": Path(p).read_bytes(), "image_id": i, "score": float("nan"), "dist_type": -1}
        for i, p in zip(good["image_id"], good["path"], strict=True)
    ]
    direct = predict_quality(
        model.state,
        model.model_cfg,
        ray.data.from_items(rows),
        **{**inference_options(cfg), "crop": 32},
    )
    np.testing.assert_array_equal(direct["predicted"], result.scores["predicted"])
    # Above the share: nothing is scored, and the error names the files.
    with pytest.raises(ScoringError, match=r"2 of 11 images are unreadable.*truncated.jpg"):
        score_images(model, images, cfg, max_bad_fraction=0.1)


# -- end to end, called from the rehearsal ------------------------------------------------------


def _score_job(capsys, *argv: str) -> str:
    """``jobs/score.py`` with ``argv``, in this process (on the session's Ray); its output."""
    from jobs.score import main

    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    return out.out


def check_scoring(run_dir: Path, photos_folder: Path, config_path: str, s3_server, capsys) -> None:
    """A pipeline run's DGQA regressor scores the run's own target photos with ``jobs/score.py``:

    - by checkpoint, over the local folder of the run's target table: the scores are the run's
      own ``target_predictions.csv`` (one split: its DGQA column is that regressor's);
    - by its MLflow model URI, over the same photos on S3 plus one corrupt file (skipped and
      listed), written as Parquet to S3: identical scores.
    """
    import io

    from dgqa_ray import storage
    from tests.fixtures.datasets import upload_tree

    summary = json.loads((run_dir / "summary.json").read_text())
    model = summary["dgqa_model"]
    assert model["checkpoint"] and model["mlflow"].startswith("runs:/"), model
    out = run_dir.parent / "scores_by_checkpoint.csv"
    output = _score_job(
        capsys,
        "--config",
        config_path,
        "--model",
        model["checkpoint"],
        "--images",
        str(photos_folder),
        "--out",
        str(out),
    )
    assert f"scores: {out}" in output and "unreadable" not in output, output[-3000:]
    by_checkpoint = pd.read_csv(out)
    run_predictions = pd.read_csv(run_dir / "target_predictions.csv")
    assert len(by_checkpoint) == len(run_predictions)
    # The folder holds the run's table and its photos/: the images are named by their path
    # below it, as the table names them, so they get the same seeded crops as in the run.
    run_dgqa = run_predictions.set_index("image_id")["dgqa"]
    np.testing.assert_allclose(
        by_checkpoint.set_index("image_id")["predicted"].reindex(run_dgqa.index),
        run_dgqa,
        atol=5e-5,  # target_predictions.csv keeps 4 decimals
    )

    prefix = s3_server.unique_uri("score-photos")
    upload_tree(photos_folder, prefix)
    storage.write_bytes_atomic(storage.join(prefix, "corrupt.jpg"), b"\xff\xd8\xff not a jpeg")
    remote_out = storage.join(prefix, "out", "scores.parquet")
    output = _score_job(
        capsys,
        "--config",
        config_path,
        "--model",
        model["mlflow"],
        "--images",
        prefix,
        "--out",
        remote_out,
        "--max-bad-fraction",
        "0.2",
    )
    assert "skipping 1 unreadable image(s)" in output, output[-3000:]
    unreadable = pd.read_csv(io.BytesIO(storage.read_bytes(unreadable_uri(remote_out))))
    assert unreadable["image_id"].tolist() == ["corrupt.jpg"]
    by_mlflow = pd.read_parquet(io.BytesIO(storage.read_bytes(remote_out)))
    assert by_mlflow["image_id"].tolist() == by_checkpoint["image_id"].tolist()
    np.testing.assert_array_equal(
        by_mlflow["predicted"].to_numpy(), by_checkpoint["predicted"].to_numpy()
    )
    print(
        f"scored {len(by_mlflow)} photos by checkpoint (local folder) and by {model['mlflow']} "
        "(S3 prefix): identical"
    )
