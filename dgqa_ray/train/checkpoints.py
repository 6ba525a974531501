"""A training run's checkpoints: where they live, what each holds, reading them back.

Runs live under ``<storage>/checkpoints/<run_name>/``. After every epoch rank 0 writes
``state.pt`` (model + optimizer + epochs done), ``progress.json`` (the metrics history,
readable without torch) and, for the regressor, ``val_predictions.csv``; Ray Train uploads them
to ``epoch_NNN/`` and keeps the best two by validation score plus the latest. A rerun with the
same run name and storage finds Ray Train's list of them (``checkpoint_manager_snapshot.json``,
:func:`latest_progress`) and resumes; :func:`check_resumable` refuses a run folder that holds
another model's checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TASKS = ("classifier", "regressor")  # == engine.TASKS (not imported: see above)

CHECKPOINTS_DIR = "checkpoints"
"""Runs live under ``<storage>/checkpoints/<run_name>/``."""

STATE_FILE = "state.pt"
"""``engine.training_state``: model, optimizer, epochs done, last epoch's metrics."""

PROGRESS_FILE = "progress.json"
"""Task, model, epochs done and the per-epoch metrics history, readable without torch."""

PREDICTIONS_FILE = "val_predictions.csv"
"""Regressor only: per-crop validation predictions of all workers (image_id, predicted, score,
rank), the rows the reported SRCC/PLCC were computed from."""

CHECKPOINTS_TO_KEEP = 2
"""The best two by validation score; Ray Train always keeps the latest on top of these."""

NAN_SCORE = -1.0
"""``val_score`` when SRCC is undefined (constant predictions early in training): below any
real SRCC, so such a checkpoint is never "best" while a real one exists."""

RAY_SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"
"""Ray Train V2's list of a run's checkpoints, in the run folder; a rerun reloads it."""


def run_dir_uri(storage_uri: str, run_name: str) -> str:
    """Where a run's checkpoints go: ``<storage>/checkpoints/<run_name>``; a run name that is
    not a plain name (``../escape``) is refused, so no run writes outside that folder."""
    from dgqa_ray.user_input import check_name

    check_name(run_name, "run_name")
    return storage.join(storage.normalize(storage_uri), CHECKPOINTS_DIR, run_name)


def storage_args(storage_uri: str) -> tuple[str, Any]:
    """``RunConfig(storage_path, storage_filesystem)`` for ``<storage>/checkpoints``."""
    fs, path = storage.resolve(storage.join(storage.normalize(storage_uri), CHECKPOINTS_DIR))
    if storage.is_s3(storage_uri):
        # The S3 filesystem carries the endpoint override; credentials stay in the env chain.
        return path, fs
    return path, None


def read_run(storage_uri: str, run_name: str):
    """Ray Train's record of a run (``ray.train.Result``), or None when it has none yet."""
    from ray.train import Result

    run_dir = run_dir_uri(storage_uri, run_name)
    if not storage.exists(storage.join(run_dir, RAY_SNAPSHOT_FILE)):
        return None
    fs, path = storage.resolve(run_dir)
    # Reading the run logs Ray's "a run snapshot was found" notice; the trainer logs it again
    # when it resumes, which is where it belongs.
    ray_log = logging.getLogger("ray.train.v2._internal.execution.checkpoint.checkpoint_manager")
    level = ray_log.level
    ray_log.setLevel(logging.WARNING)
    try:
        result = Result.from_path(path, storage_filesystem=fs)
    except Exception as e:  # a corrupt run folder: Ray Train itself will say more
        log.warning("couldn't read the checkpoints of run %s at %s: %s", run_name, run_dir, e)
        return None
    finally:
        ray_log.setLevel(level)
    return result if result.checkpoint is not None else None


def latest_progress(storage_uri: str, run_name: str) -> tuple[str, dict[str, Any]] | None:
    """The latest checkpoint of a run (the one Ray Train resumes from) and its
    ``progress.json``; None when the run has no checkpoint yet."""
    result = read_run(storage_uri, run_name)
    if result is None:
        return None
    uri = storage.to_uri(result.checkpoint.filesystem, result.checkpoint.path)
    return uri, json.loads(storage.read_text(storage.join(uri, PROGRESS_FILE)))


def read_checkpoint(checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    with checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
        with open(os.path.join(folder, PROGRESS_FILE)) as f:
            progress = json.load(f)
    return state, progress


def check_resumable(
    task: str,
    cfg: PipelineConfig,
    run_name: str,
    storage_uri: str,
    progress: Mapping[str, Any],
    dist_types: list[int] | None,
) -> None:
    """A rerun must train the same model on the same domains: restoring another model would
    fail deep in a worker, and resuming on other domains would silently mix two trainings."""
    expected = {
        "task": task,
        "backbone": cfg.model.backbone,
        "num_classes": cfg.model.num_classes if task == "classifier" else 1,
        "dist_types": dist_types,
    }
    found = {k: progress.get(k) for k in expected}
    if found != expected:
        raise ValueError(
            f"run_name: run {run_name!r} at {run_dir_uri(storage_uri, run_name)} holds "
            f"checkpoints of {found}, but this call trains {expected}; use another run name "
            "or delete that folder to start over"
        )


def load_trained_model(
    checkpoint_uri: str, cfg: PipelineConfig, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model saved in a checkpoint folder (``TrainResult.best_checkpoint``), in eval mode
    on ``device``, and its ``progress.json``. ``cfg.model`` must describe the same backbone."""
    import io

    import torch

    from dgqa_ray.engine import restore_training_state
    from dgqa_ray.models import create_model, numeric_format, prepare_for_device

    progress = json.loads(storage.read_text(storage.join(checkpoint_uri, PROGRESS_FILE)))
    task = progress.get("task")
    if task not in TASKS:
        raise ValueError(f"checkpoint_uri: {checkpoint_uri!r} has no known task ({task!r})")
    if progress.get("backbone") != cfg.model.backbone:
        raise ValueError(
            f"model.backbone: the checkpoint at {checkpoint_uri!r} is a "
            f"{progress.get('backbone')}, the config says {cfg.model.backbone}"
        )
    if task == "classifier" and progress.get("num_classes") != cfg.model.num_classes:
        raise ValueError(
            f"model.num_classes: the checkpoint at {checkpoint_uri!r} has "
            f"{progress.get('num_classes')} classes, the config says {cfg.model.num_classes}"
        )
    raw = storage.read_bytes(storage.join(checkpoint_uri, STATE_FILE))
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    model = create_model(task, cfg.model, load_weights=False)
    restore_training_state(state, model)
    model = prepare_for_device(model, device, numeric_format(cfg.model, device)[1])
    return model.eval(), progress
