"""Training the domain classifier F_D and the quality regressor F_R with Ray Train (V2 API).

The driver builds one ``TorchTrainer`` (:func:`build_trainer`) for either model; every worker
runs :func:`train_loop_per_worker`, the same loop for both::

    from dgqa_ray.config import load_config
    from dgqa_ray.train import fit_regressor, init_ray_for_training, load_trained_model, split_datasets

    cfg = load_config("demo")
    init_ray_for_training(cfg)                       # local Ray with a CPU spare for decoding
    datasets = split_datasets(cfg, cfg.storage, "kadid10k", split_index=0)  # {"train", "val"}
    result = fit_regressor(cfg, datasets, run_name="demo-regressor-0", dist_types=[1, 3, 10])
    result.best_checkpoint, result.history[-1]["val_srcc"]
    model, progress = load_trained_model(result.best_checkpoint, cfg)

What a run does (docs/design.md sections 2 and 3):

- **Workers.** ``ScalingConfig(num_workers, use_gpu)`` from ``cfg.train``; each worker reserves
  ``cpus_per_worker`` CPUs and, on CPU, runs torch with that many threads (Ray Train workers
  would otherwise get 1 CPU and crawl). Models are wrapped in DDP by
  ``ray.train.torch.prepare_model`` when there are several workers; each worker steps on
  ``batch_size // num_workers`` images, so one optimizer step sees ``batch_size`` images as in
  the paper. On GPU the model runs channels_last under bf16 autocast (``cfg.model``).
- **Data.** ``train`` and ``val`` are Ray Datasets of ingested rows (``read_dataset``). The
  driver turns ``train`` into the training view (one random crop + flip per image per epoch)
  and ``val`` into the evaluation view (``cfg.data.eval_crops`` crops per image), after keeping
  only the classifier's classes or the regressor's ``dist_types``. Ray Data decodes in its own
  tasks and streams uint8 crops to the workers (``get_dataset_shard``); they are normalised on
  the device.
- **Checkpoints.** After every epoch rank 0 writes model + optimizer + epochs done
  (``state.pt``), the metrics history (``progress.json``) and, for the regressor, the
  validation predictions (``val_predictions.csv``); Ray Train uploads them to
  ``<storage>/checkpoints/<run_name>/epoch_NNN/`` and keeps the best two by validation score
  plus the latest.
- **Faults.** ``FailureConfig(max_failures)``: when a worker dies, Ray Train restarts the
  worker group and the loop resumes from the latest checkpoint. Rerunning with the same run
  name and storage resumes as well: Ray Train V2 reloads its checkpoint list from the run
  folder, and :func:`ray.train.get_checkpoint` hands the latest one to the workers. The epoch
  count continues; a finished run is not trained again.
- **Validation.** Every epoch, each worker predicts its share of the validation crops; the
  predictions of all workers are gathered (``all_gather_object``) and SRCC/PLCC/KRCC are
  computed once over all images (crops averaged per image), never averaged per shard. The
  classifier reports cross-entropy and top-1 accuracy over all crops (sums reduced over
  workers).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray.data
import ray.train

from dgqa_ray import ray_session, storage
from dgqa_ray.config import NUM_KADID_TYPES, PipelineConfig

if TYPE_CHECKING:
    import pandas as pd
    import torch

# torch, torchvision and the engine are imported inside the functions that need them: Ray
# Train's controller and dataset manager unpickle objects from this module (the DataConfig
# below, the worker function), and importing torch there costs each of them ~500 MB of memory.

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

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
HEALTH_CHECK_INTERVAL_S = "0.2"
"""How often Ray Train's controller polls its workers (Ray's default: every 2 s). Each state
change of a run (workers started, finished) waits for the next poll: at 0.2 s a training run
ends ~3 s sooner (measured on 2 cores: a 1-worker no-op fit took 12 s at 2 s, 9 s at 0.2 s),
for a status call every 0.2 s. Set unless the environment already says otherwise."""

FAIL_AT_EPOCH_ENV = "DGQA_TRAIN_FAIL_AT_EPOCH"
FAIL_MARKER_ENV = "DGQA_TRAIN_FAIL_MARKER"


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectedFailure:
    """A worker crash for fault tests: rank ``rank`` calls ``os._exit(1)`` after its first
    training batch of epoch ``epoch`` (0-based), once per ``marker`` file.

    The marker is created just before the crash, so the retried or rerun worker group passes
    through. Before crashing, the worker waits until Ray Train's controller has taken the
    previous epoch's checkpoint, so the test knows which checkpoint the run resumes from. From
    a job: ``DGQA_TRAIN_FAIL_AT_EPOCH=2 DGQA_TRAIN_FAIL_MARKER=/tmp/crashed`` in the driver's
    environment.
    """

    epoch: int
    marker: str
    rank: int = 0

    @classmethod
    def from_env(cls) -> InjectedFailure | None:
        raw = os.environ.get(FAIL_AT_EPOCH_ENV, "").strip()
        if not raw:
            return None
        marker = os.environ.get(FAIL_MARKER_ENV, "").strip()
        if not marker:
            raise ValueError(
                f"{FAIL_AT_EPOCH_ENV} is set but {FAIL_MARKER_ENV} (a file path) is not"
            )
        try:
            epoch = int(raw)
        except ValueError as e:
            raise ValueError(
                f"{FAIL_AT_EPOCH_ENV}: expected an epoch index (0, 1, ...), got {raw!r}"
            ) from e
        return cls(epoch=epoch, marker=os.path.abspath(marker))


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


# --------------------------------------------------------------------------------------------
# The worker loop (runs in each Ray Train worker)
# --------------------------------------------------------------------------------------------


def _create_model(task: str, cfg: PipelineConfig, load_weights: bool) -> torch.nn.Module:
    from dgqa_ray.models import create_classifier, create_regressor

    if task == "classifier":
        return create_classifier(cfg.model, load_weights=load_weights)
    return create_regressor(cfg.model, load_weights=load_weights)


def _all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum each value over workers (float64 on CPU; gloo and NCCL both handle it)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def _all_reduce_max(value: float) -> float:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(value)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def _all_gather(obj: Any) -> list[Any]:
    """Every worker's ``obj``, in rank order (a list of one outside DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _wait_for_reports_taken(timeout_s: float = 30.0) -> None:
    """Block until Ray Train's controller has taken this worker's reported results.

    A report waits in a one-slot queue until the controller polls the worker (every 2 s by
    default); a worker that dies before that loses the report. Real crashes can lose the last
    epoch that way (the run then resumes one checkpoint earlier, which is still correct); the
    injected crash waits so that tests know where the run resumes. Falls back to sleeping past
    two poll intervals if Ray's internals moved.
    """
    try:
        from ray.train.v2._internal.execution.context import get_train_context

        queue = get_train_context().get_result_queue()
        deadline = time.monotonic() + timeout_s
        while queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the controller finish registering the checkpoint it just took
    except Exception:  # pragma: no cover - depends on Ray internals
        time.sleep(5.0)


def _crash_after_first_batch(
    batches: Iterable[Any], failure: InjectedFailure, rank: int
) -> Iterator[Any]:
    """Yield the first batch, then crash this worker process (see ``InjectedFailure``)."""
    iterator = iter(batches)
    yield next(iterator)
    if rank == failure.rank and not os.path.exists(failure.marker):
        _wait_for_reports_taken()
        os.makedirs(os.path.dirname(failure.marker) or ".", exist_ok=True)
        with open(failure.marker, "w") as f:
            f.write(f"worker rank {rank} crashed on purpose in epoch {failure.epoch}\n")
        _say(f"[injected failure] rank {rank} exits in epoch {failure.epoch}")
        os._exit(1)
    yield from iterator


def _validate_regressor(
    model: torch.nn.Module,
    batches: Iterable[Any],
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
    rank: int,
) -> tuple[dict[str, float], pd.DataFrame]:
    """SRCC/PLCC/KRCC over the images of *all* workers, and the gathered per-crop rows."""
    import numpy as np
    import pandas as pd

    from dgqa_ray.engine import predict_scores, regression_metrics

    crops = predict_scores(model, batches, device, amp_dtype=amp, channels_last=channels_last)
    crops["rank"] = rank
    everything = pd.concat(_all_gather(crops), ignore_index=True)
    if everything.empty:
        raise RuntimeError("validation: the val dataset produced no rows on any worker")
    metrics = regression_metrics(everything)  # crops averaged per image, then correlations
    per_image = everything.groupby("image_id", sort=False)[["predicted", "score"]].mean()
    l1 = float(np.mean(np.abs(per_image["predicted"] - per_image["score"])))
    out = {
        "val_loss": l1,
        "val_srcc": float(metrics["srcc"]),
        "val_plcc": float(metrics["plcc"]),
        "val_krcc": float(metrics["krcc"]),
        "val_images": float(metrics["n"]),
    }
    out["val_score"] = out["val_srcc"] if math.isfinite(out["val_srcc"]) else NAN_SCORE
    return out, everything


def _validate_classifier(
    model: torch.nn.Module,
    batches: Iterable[Any],
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
    num_classes: int,
) -> dict[str, float]:
    """Held-out accuracy over the images of *all* workers: every worker's per-crop logits are
    gathered, the crops of each image averaged (softmax), then top-1 / top-3 and top-1 per
    level are counted once over all images (``engine.classification_metrics``)."""
    import pandas as pd

    from dgqa_ray.engine import classification_metrics, predict_classes

    crops = predict_classes(model, batches, device, amp_dtype=amp, channels_last=channels_last)
    everything = pd.concat(_all_gather(crops), ignore_index=True)
    if everything.empty:
        raise RuntimeError("validation: the val dataset produced no rows on any worker")
    metrics = classification_metrics(everything, num_classes)
    out = {
        "val_loss": metrics["loss"],
        "val_accuracy": metrics["accuracy"],
        "val_top3_accuracy": metrics["top3_accuracy"],
        "val_images": metrics["images"],
        "val_crops": metrics["crops"],
        "val_score": metrics["accuracy"],
    }
    out.update({f"val_{k}": v for k, v in metrics.items() if k.startswith("accuracy_level")})
    return out


def _read_checkpoint(checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    with checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
        with open(os.path.join(folder, PROGRESS_FILE)) as f:
            progress = json.load(f)
    return state, progress


def _say(text: str) -> None:
    """One line to the worker's stdout, which Ray forwards to the driver. Not ``print``: Ray
    Train patches it to go to both stdout and its logger, and every line would show twice."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _format_epoch(task: str, run_name: str, entry: Mapping[str, float], epochs: int) -> str:
    text = (
        f"[{task} {run_name}] epoch {int(entry['epoch']) + 1}/{epochs}: "
        f"loss {entry['train_loss']:.4f}, {entry['train_images_per_second']:.1f} img/s "
        f"({entry['train_seconds']:.1f} s)"
    )
    if task == "classifier":
        text += (
            f", acc {entry['train_accuracy']:.3f} | val loss {entry['val_loss']:.4f}, "
            f"top-1 {entry['val_accuracy']:.3f}, top-3 {entry.get('val_top3_accuracy', float('nan')):.3f}"
            f" ({int(entry.get('val_images', entry['val_crops']))} images)"
        )
    else:
        text += (
            f" | val L1 {entry['val_loss']:.4f}, SRCC {entry['val_srcc']:.4f}, "
            f"PLCC {entry['val_plcc']:.4f} ({int(entry['val_images'])} images)"
        )
    return text + f" [{entry['epoch_seconds']:.1f} s]"


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: restore, then train + validate + checkpoint every epoch.

    ``config`` (built by :func:`build_trainer`): ``task``, ``cfg`` (``PipelineConfig.to_dict``),
    ``run_name``, ``dist_types`` (informational), ``failure`` (an ``InjectedFailure`` as a dict,
    or None), ``max_train_batches`` (None, or a cap per epoch for benchmarks), ``train_rows``
    (training rows per epoch over all workers: the learning-rate schedule's length; None: the
    first epoch's count is used) and ``init_checkpoint`` (a checkpoint whose backbone starts a
    fresh run, or None).
    """
    import ray.train.torch
    import torch

    ray_session.quiet_train_worker(config.get("verbose", False))

    from dgqa_ray.data.pipelines import TRAIN_ITER_KWARGS
    from dgqa_ray.engine import (
        create_loss,
        create_optimizer,
        create_scheduler,
        freeze_all_but_head,
        restore_training_state,
        seed_everything,
        train_one_epoch,
        training_state,
        unwrap_model,
    )
    from dgqa_ray.models import load_pretrained, numeric_format, prepare_for_device, set_head_bias

    task = config["task"]
    cfg = PipelineConfig.from_dict(config["cfg"])
    run_name = config["run_name"]
    failure = InjectedFailure(**config["failure"]) if config.get("failure") else None
    max_batches = config.get("max_train_batches")
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    use_gpu = cfg.train.use_gpu
    device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
    if device.type == "cpu":
        # Ray sets 1 thread unless told otherwise; the worker reserved cpus_per_worker cores.
        torch.set_num_threads(max(1, cfg.train.cpus_per_worker))
    amp, channels_last = numeric_format(cfg.model, device)
    num_classes = cfg.model.num_classes
    epochs = cfg.train.epochs_for(task)

    checkpoint = ray.train.get_checkpoint()
    seed_everything(cfg.train.seed)  # same initial weights on every rank
    init = config.get("init_checkpoint")
    model = _create_model(task, cfg, load_weights=checkpoint is None and not init)
    if checkpoint is None and init:
        from dgqa_ray.inference import load_model_state

        report = load_pretrained(model, load_model_state(init), skip_head=True)
        if rank == 0:
            _say(f"[{task} {run_name}] backbone from {init} ({report.loaded} tensors)")
    if task == "regressor" and checkpoint is None and config.get("label_median") is not None:
        # Start the head at the L1-optimal constant: Adam moves a parameter by about the
        # learning rate per step, so a zero bias would need hundreds of steps to reach labels
        # in [0, 10] and a short run would end far from them.
        set_head_bias(model, float(config["label_median"]))
    if task == "regressor" and cfg.train.regressor_trainable == "head":
        freeze_all_but_head(model)
    model = prepare_for_device(model, device, channels_last)
    optimizer = create_optimizer(cfg.train, model, lr=cfg.train.lr_for(task))
    per_worker_batch = cfg.train.batch_size // world
    train_rows = config.get("train_rows")
    steps_per_epoch = (
        max(1, math.ceil(train_rows / world / per_worker_batch)) if train_rows else None
    )
    if max_batches is not None and steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, int(max_batches))
    scheduler = (
        create_scheduler(cfg.train, optimizer, epochs * steps_per_epoch)
        if steps_per_epoch is not None
        else None
    )
    if scheduler is None and cfg.train.lr_schedule != "constant" and rank == 0:
        _say(f"[{task} {run_name}] no row count for the schedule: constant learning rate")
    start_epoch, history, session = 0, [], 1
    if checkpoint is not None:
        state, progress = _read_checkpoint(checkpoint)
        start_epoch = restore_training_state(state, model, optimizer, scheduler)
        history = list(progress["history"])
        session = int(progress.get("session", 1)) + 1
        if rank == 0:
            _say(
                f"[{task} {run_name}] resuming after epoch {start_epoch}/{epochs} from "
                f"{checkpoint.path}"
            )
    # DDP (gradient all-reduce) when there are several workers; a no-op for one.
    model = ray.train.torch.prepare_model(model, move_to_device=False)
    loss_fn = create_loss(task)

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")

    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        # uint8 crops; on GPU Ray copies them to the device in its prefetch thread.
        batches = train_shard.iter_torch_batches(
            batch_size=per_worker_batch,
            device=device,
            local_shuffle_seed=cfg.train.seed * 100_003 + epoch * 101 + rank,
            **TRAIN_ITER_KWARGS,
        )
        if failure is not None and failure.epoch == epoch:
            batches = _crash_after_first_batch(batches, failure, rank)
        stats = train_one_epoch(
            model,
            batches,
            optimizer,
            loss_fn,
            device,
            task=task,
            num_classes=num_classes,
            amp_dtype=amp,
            channels_last=channels_last,
            max_batches=max_batches,
            scheduler=scheduler,
        )
        # Totals over workers: images, loss sum, correct predictions; the slowest worker's time.
        images_local = stats["images"]
        sums = [images_local, stats["loss"] * images_local if images_local else 0.0]
        if task == "classifier":
            sums.append(stats["accuracy"] * images_local if images_local else 0.0)
        totals = _all_reduce_sum(sums)
        seconds = _all_reduce_max(stats["seconds"])
        data_seconds = _all_reduce_max(stats["data_seconds"])
        images = totals[0]
        # Which Ray node each rank ran on and what it trained: shows a multi-node run's spread.
        node_id = ray.get_runtime_context().get_node_id()
        workers = _all_gather({"rank": rank, "node_id": node_id, "images": int(images_local)})
        if rank == 0 and world > 1:
            _say(
                f"[{task} {run_name}] epoch {epoch + 1} images per worker: "
                + ", ".join(
                    f"rank {w['rank']} node {w['node_id'][:8]} {w['images']}" for w in workers
                )
            )
        entry: dict[str, float] = {
            "epoch": float(epoch),
            "session": float(session),
            "train_loss": totals[1] / images if images else float("nan"),
            "train_images": images,
            "train_seconds": seconds,
            "train_data_wait_seconds": data_seconds,
            "train_images_per_second": images / seconds if seconds > 0 else float("nan"),
        }
        if task == "classifier":
            entry["train_accuracy"] = totals[2] / images if images else float("nan")

        eval_model = unwrap_model(model)  # no DDP collectives: shards may differ in length
        val_batches = val_shard.iter_batches(
            batch_size=cfg.train.eval_batch_size, batch_format="numpy"
        )
        predictions = None
        if task == "regressor":
            val, predictions = _validate_regressor(
                eval_model, val_batches, device, amp, channels_last, rank
            )
        else:
            val = _validate_classifier(
                eval_model, val_batches, device, amp, channels_last, num_classes
            )
        entry.update(val)
        entry["epoch_seconds"] = time.perf_counter() - epoch_start
        history.append(entry)

        with tempfile.TemporaryDirectory(prefix="dgqa-ckpt-") as folder:
            ray_checkpoint = None
            if rank == 0:
                torch.save(
                    training_state(model, optimizer, epoch + 1, entry, scheduler),
                    os.path.join(folder, STATE_FILE),
                )
                progress = {
                    "task": task,
                    "run_name": run_name,
                    "epochs_done": epoch + 1,
                    "epochs": epochs,
                    "session": session,
                    "backbone": cfg.model.backbone,
                    "num_classes": num_classes if task == "classifier" else 1,
                    "crop_size": cfg.data.crop_size,
                    "dist_types": config.get("dist_types"),
                    "history": history,
                    "workers": workers,  # this epoch: rank, Ray node id, images trained
                }
                with open(os.path.join(folder, PROGRESS_FILE), "w") as f:
                    json.dump(progress, f, indent=1)
                if predictions is not None:
                    predictions.to_csv(os.path.join(folder, PREDICTIONS_FILE), index=False)
                ray_checkpoint = ray.train.Checkpoint.from_directory(folder)
                _say(_format_epoch(task, run_name, entry, epochs))
            ray.train.report(
                dict(entry), checkpoint=ray_checkpoint, checkpoint_dir_name=f"epoch_{epoch + 1:03d}"
            )


# --------------------------------------------------------------------------------------------
# The driver side
# --------------------------------------------------------------------------------------------


class TrainValDataConfig(ray.train.DataConfig):
    """Splits ``train`` in equal parts (DDP needs the same number of steps on every rank) and
    ``val`` without dropping rows: Ray's default (``equal=True`` for every dataset) would drop
    up to ``num_workers - 1`` validation crops, and validation must see every image."""

    def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
        output: list[dict[str, Any]] = [{} for _ in range(world_size)]
        hints = worker_node_ids if self._enable_shard_locality else None
        for name, ds in datasets.items():
            if ds.name is None:
                ds.set_name(name)
            ds = ds.copy(ds)
            ds.context.execution_options = self._resolve_execution_options(name)
            splits = ds.streaming_split(world_size, equal=name != "val", locality_hints=hints)
            for i, split in enumerate(splits):
                output[i][name] = split
        return output


def run_dir_uri(storage_uri: str, run_name: str) -> str:
    """Where a run's checkpoints go: ``<storage>/checkpoints/<run_name>``; a run name that is
    not a plain name (``../escape``) is refused, so no run writes outside that folder."""
    from dgqa_ray.user_input import check_name

    check_name(run_name, "run_name")
    return storage.join(storage.normalize(storage_uri), CHECKPOINTS_DIR, run_name)


def check_ingested(
    task: str, cfg: PipelineConfig, dataset: str | None = None, storage_uri: str | None = None
) -> str:
    """The ingested dataset ``task`` would train on, checked to have a complete manifest before
    anything starts (``shards.ManifestError`` naming the folder otherwise); returns its folder."""
    from dgqa_ray.data import shards

    if dataset is None:
        dataset = cfg.data.classifier_dataset if task == "classifier" else cfg.data.source_dataset
    folder = shards.dataset_uri(storage_uri or cfg.storage, dataset)
    shards.read_manifest(folder)
    return folder


def _storage_args(storage_uri: str) -> tuple[str, Any]:
    """``RunConfig(storage_path, storage_filesystem)`` for ``<storage>/checkpoints``."""
    fs, path = storage.resolve(storage.join(storage.normalize(storage_uri), CHECKPOINTS_DIR))
    if storage.is_s3(storage_uri):
        # The S3 filesystem carries the endpoint override; credentials stay in the env chain.
        return path, fs
    return path, None


def _read_run(storage_uri: str, run_name: str):
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
    result = _read_run(storage_uri, run_name)
    if result is None:
        return None
    uri = storage.to_uri(result.checkpoint.filesystem, result.checkpoint.path)
    return uri, json.loads(storage.read_text(storage.join(uri, PROGRESS_FILE)))


def _normalize_dist_types(task: str, dist_types: Sequence[int] | None) -> list[int] | None:
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


def _check_resumable(
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


def fit_to_cluster(cfg: PipelineConfig, log=print) -> PipelineConfig:
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
        log(
            f"[cluster] train.cpus_per_worker=0: {cfg.train.num_workers} worker(s) x {per} CPU "
            f"of the cluster's {total:g}, one left for Ray Data"
        )
    _check_cluster_cpus(cfg)
    return cfg


def _portable_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as a dict with local paths made absolute (Ray Train workers chdir)."""
    pretrained = cfg.model.pretrained
    if pretrained and "://" not in pretrained:
        pretrained = os.path.abspath(os.path.expanduser(pretrained))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=pretrained))
    return cfg.to_dict()


@dataclass(frozen=True)
class PreparedViews:
    """What :func:`prepare_datasets` hands the trainer: the views and the training rows per
    epoch (the learning-rate schedule's length; None when it could not be known)."""

    views: dict[str, Any]
    train_rows: int | None
    description: str
    label_median: float | None = None
    """Regressor: median training label of the kept rows, the L1-optimal constant the head's
    bias starts at (None when unknown)."""


VAL_CACHE_BYTES = 512 * 2**20
"""A validation view whose crops take less than this is computed once, before training, and
kept in Ray's object store (``Dataset.materialize``): it is the same every epoch (seeded crops,
and for the on-the-fly view seeded distortions), so recomputing it per epoch only costs time
(measured on the demo: 10-14 s of a 20-25 s regressor epoch)."""


def _cache_small_view(view, images: int | None, crops: int, crop: int):
    if images is None or images * crops * 3 * crop * crop > VAL_CACHE_BYTES:
        return view
    return view.materialize()


def _kept_rows(meta: Mapping[str, Any] | None, side: str, keep: Sequence[int] | None) -> int | None:
    """Rows of ``side`` (train|val) whose dist_type is in ``keep`` (None: all), from the
    ``meta`` that :func:`split_datasets` attaches; None without it."""
    if not meta or f"{side}_dist_types" not in meta:
        return None
    import numpy as np

    types = np.asarray(meta[f"{side}_dist_types"])
    return int(len(types) if keep is None else np.isin(types, list(keep)).sum())


def prepare_datasets(
    task: str,
    cfg: PipelineConfig,
    datasets: Mapping[str, Any],
    dist_types: Sequence[int] | None = None,
    start_epoch: int = 0,
) -> PreparedViews:
    """The training and evaluation views that the workers' shards come from.

    Classifier, ``data.classifier_view: stored``: only rows of its classes (KADID types 1..25,
    plus pristine 0 with 26 classes). ``on_the_fly``: only the pristine references (dist_type
    0), distorted afresh every epoch (``onthefly_training_view``); the held-out references give
    a fixed, seeded validation set of about ``data.onthefly_val_images`` images
    (``onthefly_evaluation_view``). Regressor: only ``dist_types`` when given (the selected
    domains), on both sides. ``start_epoch`` offsets the crop and distortion seeds of a resumed
    run, so its epochs do not repeat the first epochs' draws.
    """
    from dgqa_ray.data.pipelines import (
        evaluation_view,
        filter_domains,
        onthefly_evaluation_view,
        onthefly_samples_per_reference,
        onthefly_training_view,
        training_view,
    )
    from dgqa_ray.models import class_dist_types

    missing = {"train", "val"} - set(datasets)
    if missing:
        raise ValueError(
            f"datasets: expected keys 'train' and 'val' (Ray Datasets), missing {sorted(missing)}"
        )
    meta = datasets.get("meta")
    train, val = datasets["train"], datasets["val"]
    crop, d = cfg.data.crop_size, cfg.data
    if task == "classifier" and d.classifier_view == "on_the_fly":
        train, val = filter_domains(train, [0]), filter_domains(val, [0])
        n_train = _kept_rows(meta, "train", [0])
        n_val = _kept_rows(meta, "val", [0])
        if n_val is None:
            n_val = val.count()
        if n_train == 0 or n_val == 0:
            raise ValueError(
                "data.classifier_view: on_the_fly needs pristine references (dist_type 0) on "
                f"both sides of the split; found {n_train} for training and {n_val} held out"
            )
        per_ref = onthefly_samples_per_reference(d.onthefly_val_images, n_val)
        on_gpu = bool(d.onthefly_on_gpu and cfg.train.use_gpu)
        train = onthefly_training_view(
            train,
            crop=crop,
            samples_per_ref=d.onthefly_samples_per_ref,
            seed=cfg.train.seed,
            epoch=start_epoch,
            hflip=d.hflip,
            num_classes=cfg.model.num_classes,
            device="cuda" if on_gpu else "cpu",
            num_gpus=0.25 if on_gpu else 0.0,
        )
        val = onthefly_evaluation_view(
            val,
            crop=crop,
            num_crops=d.eval_crops,
            per_ref=per_ref,
            seed=cfg.train.seed,
            num_classes=cfg.model.num_classes,
        )
        val = _cache_small_view(val, n_val * per_ref, d.eval_crops, crop)
        rows = None if n_train is None else n_train * d.onthefly_samples_per_ref
        text = (
            f"on the fly: {n_train if n_train is not None else '?'} references x "
            f"{d.onthefly_samples_per_ref} fresh samples per epoch; validation {n_val} held-out "
            f"references x {per_ref} fixed images"
        )
        return PreparedViews(
            {"train": train.select_columns(["image", "dist_type"]), "val": val}, rows, text
        )

    keep: list[int] | None = None
    if task == "classifier":
        keep = [int(t) for t in class_dist_types(cfg.model.num_classes)]
    elif dist_types is not None:
        keep = [int(t) for t in dist_types]
    if keep is not None:
        train, val = filter_domains(train, keep), filter_domains(val, keep)
    rows = _kept_rows(meta, "train", keep)
    median = None
    if task == "regressor" and meta and "train_scores" in meta:
        import numpy as np

        scores = np.asarray(meta["train_scores"], dtype=np.float64)
        if keep is not None:
            scores = scores[np.isin(np.asarray(meta["train_dist_types"]), keep)]
        scores = scores[np.isfinite(scores)]
        median = float(np.median(scores)) if scores.size else None
    train = training_view(train, crop=crop, seed=cfg.train.seed, epoch=start_epoch, hflip=d.hflip)
    target = "dist_type" if task == "classifier" else "score"
    train = train.select_columns(["image", target])  # numeric columns only: torch batches
    val = evaluation_view(val, crop=crop, num_crops=d.eval_crops, seed=cfg.train.seed)
    val = _cache_small_view(val, _kept_rows(meta, "val", keep), d.eval_crops, crop)
    text = f"stored: {rows if rows is not None else '?'} training images per epoch"
    return PreparedViews({"train": train, "val": val}, rows, text, median)


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
    dist_types = _normalize_dist_types(task, dist_types)
    storage_uri = storage.normalize(storage_uri or cfg.storage)
    cfg = fit_to_cluster(cfg, log=lambda _: None)

    start_epoch = 0
    latest = latest_progress(storage_uri, run_name)
    if latest is not None:
        uri, progress = latest
        _check_resumable(task, cfg, run_name, storage_uri, progress, dist_types)
        start_epoch = int(progress["epochs_done"])
        print(f"[{task} {run_name}] found checkpoint after epoch {start_epoch}: {uri}")

    if failure is None:
        failure = InjectedFailure.from_env()
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)  # read by fit()
    prepared = prepare_datasets(task, cfg, datasets, dist_types, start_epoch)
    views = prepared.views
    print(f"[{task} {run_name}] data: {prepared.description}")
    resources: dict[str, float] = {"CPU": float(cfg.train.cpus_per_worker)}
    if cfg.train.use_gpu:
        resources["GPU"] = 1.0
    storage_path, storage_fs = _storage_args(storage_uri)
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


def _fit(
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
    print(
        f"[{task} {run_name}] {epochs} epoch(s), {cfg.train.num_workers} worker(s) x "
        f"{cfg.train.cpus_per_worker} CPU{' + 1 GPU' if cfg.train.use_gpu else ''}, "
        f"batch {cfg.train.batch_size}, {cfg.model.backbone} at {cfg.data.crop_size}px; "
        f"checkpoints in {run_dir_uri(storage_uri, run_name)}"
    )
    if before is not None and done_before >= epochs:
        # Finished earlier: reuse it instead of starting workers that would have nothing to do.
        _check_resumable(
            task, cfg, run_name, storage_uri, before[1], _normalize_dist_types(task, dist_types)
        )
        print(f"[{task} {run_name}] already complete ({done_before} epochs): {before[0]}")
        result = _read_run(storage_uri, run_name)
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
    return _fit("classifier", cfg, datasets, run_name, storage_uri, None, **kwargs)


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
    return _fit("regressor", cfg, datasets, run_name, storage_uri, dist_types, **kwargs)


def load_trained_model(
    checkpoint_uri: str, cfg: PipelineConfig, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model saved in a checkpoint folder (``TrainResult.best_checkpoint``), in eval mode
    on ``device``, and its ``progress.json``. ``cfg.model`` must describe the same backbone."""
    import io

    import torch

    from dgqa_ray.engine import restore_training_state
    from dgqa_ray.models import numeric_format, prepare_for_device

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
    model = _create_model(task, cfg, load_weights=False)
    restore_training_state(state, model)
    model = prepare_for_device(model, device, numeric_format(cfg.model, device)[1])
    return model.eval(), progress


def split_datasets(
    cfg: PipelineConfig, storage_uri: str, dataset: str, split_index: int = 0
) -> dict[str, Any]:
    """``{"train", "val", "meta"}`` of an ingested dataset: split ``split_index`` of the paper's
    reference-grouped splits (``cfg.eval``: ``train_fraction``, ``split_seed``, ``n_splits``).

    ``meta`` holds each side's ``dist_type`` per row (``train_dist_types``,
    ``val_dist_types``) and the training side's ``score`` (``train_scores``), read from those
    columns alone, so the trainer knows how many rows an epoch has (the learning-rate schedule)
    and where the labels lie (the regressor head's starting bias) without reading images. For the classifier's on-the-fly
    view the dataset is read in blocks of ``onthefly_block_rows`` references, one task each.
    """
    import numpy as np

    from dgqa_ray.data.pipelines import onthefly_block_rows, read_dataset
    from dgqa_ray.data.splits import paper_splits

    if not 0 <= split_index < cfg.eval.n_splits:
        raise ValueError(
            f"split_index: expected 0..{cfg.eval.n_splits - 1} (eval.n_splits = "
            f"{cfg.eval.n_splits}), got {split_index}"
        )
    table = read_dataset(storage_uri, dataset, columns=["ref_id", "dist_type", "score"]).to_pandas()
    split = paper_splits(
        table["ref_id"],
        n=cfg.eval.n_splits,
        seed=cfg.eval.split_seed,
        train_fraction=cfg.eval.train_fraction,
    )[split_index]
    kwargs = {}
    if dataset == cfg.data.classifier_dataset and cfg.data.classifier_view == "on_the_fly":
        kwargs["read_block_rows"] = onthefly_block_rows(cfg.data.onthefly_samples_per_ref)
    ds = read_dataset(storage_uri, dataset, **kwargs)
    types = table["dist_type"].fillna(-1).to_numpy().astype(np.int64)
    scores = table["score"].astype("float64").to_numpy()
    in_train = table["ref_id"].astype(str).isin(set(map(str, split.train_refs))).to_numpy()
    return {
        "train": split.select(ds, "train"),
        "val": split.select(ds, "test"),
        "meta": {
            "train_dist_types": types[in_train],
            "val_dist_types": types[~in_train],
            "train_scores": scores[in_train],
        },
    }


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
    return _fit(task, cfg, datasets, run_name, storage_uri, dist_types)


def init_ray_for_training(cfg: PipelineConfig, log=print) -> PipelineConfig:
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
    return fit_to_cluster(cfg, log)


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
