"""Faults: an injected worker crash resumes from the last checkpoint, and a rerun continues."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgqa_ray import train
from tests.fixtures.training import split_views as _datasets
from tests.fixtures.training import tiny_config


def test_injected_failure_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv(train.FAIL_AT_EPOCH_ENV, raising=False)
    assert train.InjectedFailure.from_env() is None
    monkeypatch.setenv(train.FAIL_AT_EPOCH_ENV, "2")
    with pytest.raises(ValueError, match=train.FAIL_MARKER_ENV):
        train.InjectedFailure.from_env()
    monkeypatch.setenv(train.FAIL_MARKER_ENV, str(tmp_path / "m"))
    assert train.InjectedFailure.from_env() == train.InjectedFailure(2, str(tmp_path / "m"))


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
