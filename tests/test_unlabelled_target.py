"""A user's own unlabelled photos as the target: the pipeline runs through, scores every image
and measures nothing it cannot; the same table with its scores named gives SRCC/PLCC.

The end-to-end run is the job that the two-node rehearsal submits (``tests/test_cluster.py``:
a tiny config whose target is a ``custom`` table of photos with only a ``path`` column, then
the same table with ``data.target_options.score_column``); the checks on what it must say and
write are here, next to the unit tests of the pieces. The searches' refusal of an unlabelled
target is in ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def test_target_metrics_use_the_scored_images_and_are_nan_without_any():
    from dgqa_ray.pipeline import target_metrics

    per_image = pd.DataFrame(
        {"image_id": list("abcd"), "predicted": [1.0, 2.0, 3.0, 4.0], "score": [2, 4, 6, np.nan]}
    )
    metrics = target_metrics(per_image)
    assert metrics["n_scored"] == 3 and metrics["srcc"] == pytest.approx(1.0)
    unlabelled = target_metrics(per_image.assign(score=np.nan))
    assert unlabelled["n_scored"] == 0 and all(
        math.isnan(unlabelled[k]) for k in ("srcc", "plcc", "krcc")
    )


def test_target_predictions_average_the_splits_in_the_index_order(tmp_path):
    from dgqa_ray.pipeline import write_target_predictions

    def per_image(ids, predicted):
        return pd.DataFrame({"image_id": ids, "predicted": predicted, "score": np.nan})

    predictions = {
        ("dgqa", 0): per_image(["b", "a"], [4.0, 2.0]),
        ("dgqa", 1): per_image(["a", "b"], [4.0, 6.0]),
        ("baseline", 0): per_image(["a", "b"], [1.0, 1.5]),
    }
    paths = pd.DataFrame({"image_id": ["a", "b", "gone"], "path": ["/p/a.png", "/p/b.jpg", "/x"]})
    table = pd.read_csv(write_target_predictions(tmp_path, predictions, paths))
    assert list(table.columns) == ["image_id", "path", "dgqa", "baseline"]  # no score: unlabelled
    assert table["image_id"].tolist() == ["a", "b"]  # "gone" was never ingested
    assert table["dgqa"].tolist() == [3.0, 5.0] and table["baseline"].tolist() == [1.0, 1.5]


def test_the_baseline_can_be_left_out():
    from dgqa_ray.config import load_config
    from dgqa_ray.pipeline import regressor_variants

    cfg = load_config("demo", ["eval.baseline=false"])
    assert regressor_variants(cfg, [3, 1], None) == {"dgqa": [3, 1]}


def check_unlabelled_run(out: str, run_dir: Path, photos) -> pd.DataFrame:
    """What a pipeline run on an unlabelled table of photos (``build_custom``, with
    ``eval.baseline=false``) must have said and written; returns its predictions table.
    The run itself is the two-node rehearsal's submitted job (tests/test_cluster.py)."""
    assert "target: no scores (unlabelled)" in out
    assert "no target scores: SRCC/PLCC not measured" in out
    table = pd.read_csv(run_dir / "target_predictions.csv")
    assert list(table.columns) == ["image_id", "path", "dgqa"]  # eval.baseline=false
    assert len(table) == len(photos.expected) and table["image_id"].is_unique
    assert sorted(table["path"]) == sorted(photos.expected["path"])
    assert table["dgqa"].between(-5, 15).all()  # the [0, 10] scale, give or take a regressor
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["target_labelled"] is False and summary["selected"]
    assert summary["baseline_srcc"] is None and summary["dgqa_srcc"] is None
    assert summary["dgqa_plcc"] is None
    assert "The target has no scores" in (run_dir / "report.md").read_text()
    assert not (run_dir / "target_scatter_dgqa_split0.png").exists()
    return table


def check_scored_run(out: str, run_dir: Path, unlabelled: pd.DataFrame) -> None:
    """The rerun of ``check_unlabelled_run``'s config with
    ``data.target_options.score_column=score``: stages reused, the same regressor measured,
    the same predictions."""
    assert "target: no scores" not in out and "target SRCC" in out
    assert out.count("already complete") == 1 + 1  # the classifier and the DGQA regressor
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["target_labelled"] is True
    for key in ("dgqa_srcc", "dgqa_plcc"):
        assert -1.0 <= summary[key] <= 1.0, key
    scored = pd.read_csv(run_dir / "target_predictions.csv")
    assert list(scored.columns) == ["image_id", "path", "dgqa", "score"]
    both = unlabelled.merge(scored, on="image_id", suffixes=("", "_scored"))
    assert len(both) == len(unlabelled)
    np.testing.assert_allclose(both["dgqa"], both["dgqa_scored"], atol=0.05)
