"""Training the domain classifier F_D and the quality regressor F_R with Ray Train (V2 API).

The driver builds one ``TorchTrainer`` for either model; every worker runs the same loop::

    from dgqa_ray.config import load_config
    from dgqa_ray.train import fit_regressor, init_ray_for_training, load_trained_model, split_datasets

    cfg = load_config("demo")
    cfg = init_ray_for_training(cfg)                 # local Ray with a CPU spare for decoding
    datasets = split_datasets(cfg, cfg.storage, "kadid10k", split_index=0)  # {"train", "val"}
    result = fit_regressor(cfg, datasets, run_name="demo-regressor-0", dist_types=[1, 3, 10])
    result.best_checkpoint, result.history[-1]["val_srcc"]
    model, progress = load_trained_model(result.best_checkpoint, cfg)

One concept per file (docs/design.md sections 2 and 3):

- ``driver.py``: the trainer, its run, resumption and reuse, the cluster's CPU check.
- ``worker.py``: the loop each Ray Train worker runs (train, validate over all workers,
  checkpoint).
- ``datasets.py``: the reference-grouped split and each model's training/evaluation views.
- ``checkpoints.py``: where a run's checkpoints live, what each holds, loading a trained model.
- ``faults.py``: injected worker crashes for the fault tests.
- ``cli.py``: the command line of ``jobs/train_classifier.py`` and ``jobs/train_regressor.py``.
"""

from .checkpoints import (
    CHECKPOINTS_DIR,
    PREDICTIONS_FILE,
    PROGRESS_FILE,
    STATE_FILE,
    TASKS,
    latest_progress,
    load_trained_model,
    run_dir_uri,
)
from .datasets import PreparedViews, check_ingested, prepare_datasets, split_datasets
from .driver import (
    TrainResult,
    build_trainer,
    fit_classifier,
    fit_regressor,
    fit_to_cluster,
    format_history,
    init_ray_for_training,
    train_from_storage,
)
from .faults import FAIL_AT_EPOCH_ENV, FAIL_MARKER_ENV, InjectedFailure
from .worker import train_loop_per_worker

__all__ = [
    "CHECKPOINTS_DIR",
    "FAIL_AT_EPOCH_ENV",
    "FAIL_MARKER_ENV",
    "PREDICTIONS_FILE",
    "PROGRESS_FILE",
    "STATE_FILE",
    "TASKS",
    "InjectedFailure",
    "PreparedViews",
    "TrainResult",
    "build_trainer",
    "check_ingested",
    "fit_classifier",
    "fit_regressor",
    "fit_to_cluster",
    "format_history",
    "init_ray_for_training",
    "latest_progress",
    "load_trained_model",
    "prepare_datasets",
    "run_dir_uri",
    "split_datasets",
    "train_from_storage",
    "train_loop_per_worker",
]
