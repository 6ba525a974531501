"""The driver side of training: one ``TorchTrainer`` for either model (:func:`build_trainer`),
run, resumed or reused (:func:`fit_classifier`, :func:`fit_regressor`,
:func:`train_from_storage`), on a cluster it has checked first (:func:`fit_to_cluster`).

- **Workers.** ``ScalingConfig(num_workers, use_gpu)`` from ``cfg.train``; each worker reserves
  ``cpus_per_worker`` CPUs, and one CPU stays free for Ray Data's decoding tasks.
- **Resumption.** A rerun with the same run name and storage resumes from the latest
  checkpoint; the epoch count continues, and a finished run is not trained again.
- **Faults.** ``FailureConfig(max_failures)``: when a worker dies, Ray Train restarts the worker
  group and the loop resumes from the latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray.data
import ray.train

from dgqa_ray import ray_session, storage
from dgqa_ray.config import NUM_KADID_TYPES, PipelineConfig

from .checkpoints import (
    CHECKPOINTS_TO_KEEP,
    PROGRESS_FILE,
    TASKS,
    check_resumable,
    latest_progress,
    read_run,
    run_dir_uri,
    storage_args,
)
from .datasets import TrainValDataConfig, prepare_datasets, split_datasets
from .faults import InjectedFailure
from .worker import train_loop_per_worker

log = logging.getLogger(__name__)

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"

HEALTH_CHECK_INTERVAL_S = "0.2"
"""How often Ray Train's controller polls its workers (Ray's default: every 2 s). Each state
change of a run (workers started, finished) waits for the next poll: at 0.2 s a training run
ends ~3 s sooner (measured on 2 cores: a 1-worker no-op fit took 12 s at 2 s, 9 s at 0.2 s),
for a status call every 0.2 s. Set unless the environment already says otherwise."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run left behind (returned by :func:`fit_classifier` / :func:`fit_regressor`).

    ``history`` has one dict per epoch, oldest first, across resumptions: ``epoch`` (0-based),
    ``session`` (1 for the first training session of the run, +1 each time it resumed from a
    checkpoint), ``train_loss``, ``train_images_per_second``, ``train_seconds``,
    ``train_data_wait_seconds`` (the longest any worker waited for batches), ``val_loss``
    and ``val_srcc``/``val_plcc``/``val_krcc``/``val_images`` (regressor) or ``train_accuracy``,
    ``val_accuracy``, ``val_crops`` (classifier), and ``val_score`` (what "best" means).
    """

    task: str
    run_name: str
    run_dir: str
    """``<storage>/checkpoints/<run_name>`` (local path or ``s3://`` URI)."""
    best_checkpoint: str
    """Checkpoint folder with the highest ``val_score`` (SRCC or accuracy)."""
    last_checkpoint: str
    """Checkpoint folder of the last finished epoch."""
    history: list[dict[str, float]] = field(repr=False)
    final_metrics: dict[str, float] = field(default_factory=dict)
    """The last epoch's entry of ``history``."""
    best_metrics: dict[str, float] = field(default_factory=dict)
    """The entry of ``history`` the best checkpoint was saved at."""
    epochs_trained_now: int = 0
    """Epochs this call trained (0 when the run was already complete)."""

    def summary(self) -> str:
        last = self.final_metrics
        key = "val_srcc" if self.task == "regressor" else "val_accuracy"
        return (
            f"{self.task} {self.run_name}: {len(self.history)} epoch(s) "
            f"({self.epochs_trained_now} now), last {key} {last.get(key, float('nan')):.4f}, "
            f"best {self.best_metrics.get(key, float('nan')):.4f}; "
            f"best checkpoint {self.best_checkpoint}"
        )


def normalize_dist_types(task: str, dist_types: Sequence[int] | None) -> list[int] | None:
    """Sorted distinct KADID ids, or None (all types); only the regressor takes them."""
    if dist_types is None:
        return None
    if task != "regressor":
        raise ValueError("dist_types: only the regressor trains on selected domains")
    bad = [t for t in dist_types if not 1 <= int(t) <= NUM_KADID_TYPES]
    if bad or not list(dist_types):
        raise ValueError(
            f"dist_types: expected one or more KADID ids in 1..{NUM_KADID_TYPES}, "
            f"got {list(dist_types)}"
        )
    return sorted({int(t) for t in dist_types})


def _check_cluster_cpus(cfg: PipelineConfig) -> None:
    """Ray Data decodes in tasks that need CPUs besides the ones Train workers reserve."""
    import ray

    if not ray.is_initialized():
        return
    total = float(ray.cluster_resources().get("CPU", 0.0))
    reserved = cfg.train.num_workers * cfg.train.cpus_per_worker
    if total and total < reserved + 1:
        raise ValueError(
            f"train.cpus_per_worker: {cfg.train.num_workers} worker(s) x "
            f"{cfg.train.cpus_per_worker} CPUs = {reserved} leaves none of the cluster's "
            f"{total:g} CPUs for Ray Data's decoding tasks, so training would wait forever; "
            f"expected num_workers x cpus_per_worker <= {total - 1:g} (or "
            "train.cpus_per_worker=0, which derives it from the cluster)"
        )


def fit_to_cluster(cfg: PipelineConfig, quiet: bool = False) -> PipelineConfig:
    """``cfg`` with ``train.cpus_per_worker: 0`` resolved from the running cluster:
    ``(CPUs - 1) // num_workers``, at least 1, so that a CPU stays free for Ray Data; then the
    check that the workers leave Ray Data a CPU (a clear error, before any stage runs).
    Without Ray running, 0 stays 0 (resolved when a trainer is built)."""
    import ray

    if not ray.is_initialized():
        return cfg
    if cfg.train.cpus_per_worker == 0:
        total = float(ray.cluster_resources().get("CPU", 0.0))
        per = max(1, int((total - 1) // cfg.train.num_workers)) if total else 1
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, cpus_per_worker=per))
        if not quiet:
            log.info(
                f"[cluster] train.cpus_per_worker=0: {cfg.train.num_workers} worker(s) x {per} CPU "
                f"of the cluster's {total:g}, one left for Ray Data"
            )
    _check_cluster_cpus(cfg)
    return cfg


def init_ray_for_training(cfg: PipelineConfig) -> PipelineConfig:
    """Connect to the cluster (``RAY_ADDRESS``, as under ``ray job submit``) or start a local
    Ray with enough logical CPUs for the Train workers *and* Ray Data's decoding tasks; returns
    ``cfg`` fitted to it (``fit_to_cluster``).

    Locally: ``max(os.cpu_count(), num_workers x cpus_per_worker + 1)`` CPUs, i.e. on a 2-core
    machine with one worker of 2 CPUs, 3 logical CPUs: the worker's torch threads and the
    decoding tasks then share the cores, instead of decoding waiting forever for a free CPU.
    With ``cpus_per_worker: 0``, ``os.cpu_count() + 1``: the workers get the cores.
    """
    from dgqa_ray.ray_session import init_ray

    cores = os.cpu_count() or 1
    per = cfg.train.cpus_per_worker or max(1, cores // cfg.train.num_workers)
    init_ray(num_cpus=max(cores, cfg.train.num_workers * per + 1))
    return fit_to_cluster(cfg)


def _portable_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as a dict with local paths made absolute (Ray Train workers chdir)."""
    pretrained = cfg.model.pretrained
    if pretrained and "://" not in pretrained:
        pretrained = os.path.abspath(os.path.expanduser(pretrained))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=pretrained))
    return cfg.to_dict()


def build_trainer(
    task: str,
    cfg: PipelineConfig,
    datasets: Mapping[str, Any],
    run_name: str,
    storage_uri: str | None = None,
    dist_types: Sequence[int] | None = None,
    *,
    failure: InjectedFailure | None = None,
    max_train_batches: int | None = None,
    init_checkpoint: str | None = None,
):
    """A ``TorchTrainer`` that trains ``task`` (classifier|regressor) as ``cfg`` says.

    Args:
        task: ``classifier`` (F_D, cross-entropy over ``cfg.model.num_classes``) or
            ``regressor`` (F_R, L1 on ``score``).
        cfg: the pipeline config (model, train, data sections are used).
        datasets: ``{"train": ds, "val": ds}``, Ray Datasets of ingested rows
            (``read_dataset``, possibly split by reference).
        run_name: names the run folder; the same name and storage resume the run.
        storage_uri: local path or ``s3://`` URI; None: ``cfg.storage``. Checkpoints go to
            ``<storage>/checkpoints/<run_name>/``.
        dist_types: regressor only: keep these KADID types (the selected domains); None: all.
        failure: crash a worker once on purpose (tests); None reads ``DGQA_TRAIN_FAIL_AT_EPOCH``
            and ``DGQA_TRAIN_FAIL_MARKER`` from the environment, if set.
        max_train_batches: cap on training batches per epoch and worker (benchmarks).
        init_checkpoint: a checkpoint folder (``TrainResult.best_checkpoint``) whose backbone
            initialises the model before the first epoch (its head is skipped): the domain
            classifier's, for ``model.regressor_init: classifier``. Ignored on resume.

    Raises:
        ValueError: bad task, dataset keys, dist_types, a run name holding another model's
            checkpoints, or a cluster whose CPUs would all go to Train workers.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if task not in TASKS:
        raise ValueError(f"task: invalid value {task!r}; allowed: {', '.join(TASKS)}")
    dist_types = normalize_dist_types(task, dist_types)
    storage_uri = storage.normalize(storage_uri or cfg.storage)
    cfg = fit_to_cluster(cfg, quiet=True)

    start_epoch = 0
    latest = latest_progress(storage_uri, run_name)
    if latest is not None:
        uri, progress = latest
        check_resumable(task, cfg, run_name, storage_uri, progress, dist_types)
        start_epoch = int(progress["epochs_done"])
        log.info(f"[{task} {run_name}] found checkpoint after epoch {start_epoch}: {uri}")

    if failure is None:
        failure = InjectedFailure.from_env()
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)  # read by fit()
    prepared = prepare_datasets(task, cfg, datasets, dist_types, start_epoch)
    views = prepared.views
    log.info(f"[{task} {run_name}] data: {prepared.description}")
    resources: dict[str, float] = {"CPU": float(cfg.train.cpus_per_worker)}
    if cfg.train.use_gpu:
        resources["GPU"] = 1.0
    storage_path, storage_fs = storage_args(storage_uri)
    score_metric = "val_score"  # val SRCC (regressor) or val accuracy (classifier)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "task": task,
            "cfg": _portable_config(cfg),
            "run_name": run_name,
            "dist_types": dist_types,
            "failure": dataclasses.asdict(failure) if failure else None,
            "max_train_batches": max_train_batches,
            "train_rows": prepared.train_rows,
            "label_median": prepared.label_median,
            "init_checkpoint": init_checkpoint,
            "verbose": ray_session.is_verbose(),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.train.num_workers,
            use_gpu=cfg.train.use_gpu,
            resources_per_worker=resources,
            placement_strategy=cfg.train.placement_strategy,
        ),
        run_config=RunConfig(
            name=run_name,
            logging_config=ray_session.train_logging_config(),
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=CHECKPOINTS_TO_KEEP,
                checkpoint_score_attribute=score_metric,
                checkpoint_score_order="max",
            ),
        ),
        datasets=views,
        # Given explicitly (the context's options, as Ray's default takes them): Ray's default
        # path sets a deprecated option and prints a warning per run.
        dataset_config=TrainValDataConfig(
            execution_options=ray.data.DataContext.get_current().execution_options
        ),
    )


def fit(
    task: str,
    cfg: PipelineConfig,
    datasets: Mapping[str, Any],
    run_name: str | None,
    storage_uri: str | None,
    dist_types: Sequence[int] | None,
    **kwargs: Any,
) -> TrainResult:
    run_name = run_name or f"{cfg.run_name}-{task}"
    storage_uri = storage.normalize(storage_uri or cfg.storage)
    before = latest_progress(storage_uri, run_name)
    done_before = int(before[1]["epochs_done"]) if before else 0
    epochs = cfg.train.epochs_for(task)
    log.info(
        f"[{task} {run_name}] {epochs} epoch(s), {cfg.train.num_workers} worker(s) x "
        f"{cfg.train.cpus_per_worker} CPU{' + 1 GPU' if cfg.train.use_gpu else ''}, "
        f"batch {cfg.train.batch_size}, {cfg.model.backbone} at {cfg.data.crop_size}px; "
        f"checkpoints in {run_dir_uri(storage_uri, run_name)}"
    )
    if before is not None and done_before >= epochs:
        # Finished earlier: reuse it instead of starting workers that would have nothing to do.
        check_resumable(
            task, cfg, run_name, storage_uri, before[1], normalize_dist_types(task, dist_types)
        )
        log.info(f"[{task} {run_name}] already complete ({done_before} epochs): {before[0]}")
        result = read_run(storage_uri, run_name)
    else:
        trainer = build_trainer(task, cfg, datasets, run_name, storage_uri, dist_types, **kwargs)
        result = trainer.fit()
    if result is None or result.checkpoint is None:
        raise RuntimeError(f"{task} run {run_name!r} finished without a checkpoint")
    last_uri = storage.to_uri(result.checkpoint.filesystem, result.checkpoint.path)
    progress = json.loads(storage.read_text(storage.join(last_uri, PROGRESS_FILE)))
    history = progress["history"]
    best = result.get_best_checkpoint(metric="val_score", mode="max") or result.checkpoint
    best_uri = storage.to_uri(best.filesystem, best.path)
    best_progress = json.loads(storage.read_text(storage.join(best_uri, PROGRESS_FILE)))
    return TrainResult(
        task=task,
        run_name=run_name,
        run_dir=run_dir_uri(storage_uri, run_name),
        best_checkpoint=best_uri,
        last_checkpoint=last_uri,
        history=history,
        final_metrics=dict(history[-1]),
        best_metrics=dict(best_progress["history"][-1]),
        epochs_trained_now=int(progress["epochs_done"]) - done_before,
    )


def fit_classifier(
    cfg: PipelineConfig,
    datasets: Mapping[str, Any],
    run_name: str | None = None,
    storage_uri: str | None = None,
    **kwargs: Any,
) -> TrainResult:
    """Train (or resume, or reuse) the domain classifier; ``run_name`` None: ``<run>-classifier``.

    ``datasets``: ``{"train", "val"}`` Ray Datasets of the classifier's dataset (KADIS-style).
    Keyword arguments go to :func:`build_trainer` (``failure``, ``max_train_batches``).
    """
    return fit("classifier", cfg, datasets, run_name, storage_uri, None, **kwargs)


def fit_regressor(
    cfg: PipelineConfig,
    datasets: Mapping[str, Any],
    run_name: str | None = None,
    storage_uri: str | None = None,
    dist_types: Sequence[int] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """Train (or resume, or reuse) a quality regressor on the source's ``dist_types`` (None:
    all); ``run_name`` None: ``<run>-regressor``. See :func:`fit_classifier`."""
    return fit("regressor", cfg, datasets, run_name, storage_uri, dist_types, **kwargs)


def train_from_storage(
    task: str,
    cfg: PipelineConfig,
    dataset: str | None = None,
    *,
    split_index: int = 0,
    run_name: str | None = None,
    storage_uri: str | None = None,
    dist_types: Sequence[int] | None = None,
) -> TrainResult:
    """Train ``task`` on an ingested dataset under ``storage_uri`` (None: ``cfg.storage``):
    split ``split_index`` of it, reference-grouped, validates. ``dataset`` None: the config's
    ``data.classifier_dataset`` (classifier) or ``data.source_dataset`` (regressor). What
    ``jobs/train_classifier.py`` and ``jobs/train_regressor.py`` run."""
    if task not in TASKS:
        raise ValueError(f"task: invalid value {task!r}; allowed: {', '.join(TASKS)}")
    storage_uri = storage.normalize(storage_uri or cfg.storage)
    if dataset is None:
        dataset = cfg.data.classifier_dataset if task == "classifier" else cfg.data.source_dataset
    datasets = split_datasets(cfg, storage_uri, dataset, split_index)
    return fit(task, cfg, datasets, run_name, storage_uri, dist_types)


def format_history(result: TrainResult) -> str:
    """The per-epoch metrics as a small table (what the jobs print)."""
    columns = [("loss", "train_loss"), ("img/s", "train_images_per_second")]
    if result.task == "regressor":
        columns += [("val L1", "val_loss"), ("val SRCC", "val_srcc"), ("val PLCC", "val_plcc")]
    else:
        columns += [
            ("acc", "train_accuracy"),
            ("val loss", "val_loss"),
            ("val acc", "val_accuracy"),
        ]
    lines = [f"{'epoch':>5} {'session':>7} " + " ".join(f"{label:>9}" for label, _ in columns)]
    for entry in result.history:
        values = " ".join(f"{entry.get(key, float('nan')):>9.4f}" for _, key in columns)
        lines.append(f"{int(entry['epoch']) + 1:>5} {int(entry['session']):>7} {values}")
    return "\n".join(lines)
