"""The loop every Ray Train worker runs, for both models: restore, then train + validate +
checkpoint every epoch (:func:`train_loop_per_worker`).

- **Devices.** On CPU torch runs with ``cpus_per_worker`` threads (Ray Train workers would
  otherwise get 1); on GPU the model runs channels_last under bf16 autocast (``cfg.model``).
  Several workers: DDP (``ray.train.torch.prepare_model``), each stepping on
  ``batch_size // num_workers`` images, so one optimizer step sees ``batch_size`` images as in
  the paper.
- **Validation.** Every epoch, each worker predicts its share of the validation crops; the
  predictions of all workers are gathered (``all_gather_object``) and SRCC/PLCC/KRCC are
  computed once over all images (crops averaged per image), never averaged per shard. The
  classifier reports cross-entropy and top-1/top-3 accuracy the same way.
- **Checkpoints.** Rank 0 writes the files of ``checkpoints.py`` and reports them to Ray Train.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dgqa_ray import ray_session
from dgqa_ray.config import PipelineConfig
from dgqa_ray.ray_session import worker_line

from .checkpoints import NAN_SCORE, PREDICTIONS_FILE, PROGRESS_FILE, STATE_FILE, read_checkpoint
from .faults import InjectedFailure, crash_after_first_batch

if TYPE_CHECKING:
    import pandas as pd
    import torch

# torch, torchvision and the engine are imported inside the functions that need them: Ray
# Train's controller unpickles the worker function from this module, and importing torch there
# costs it ~500 MB of memory.


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
    from dgqa_ray.models import (
        create_model,
        load_pretrained,
        numeric_format,
        prepare_for_device,
        set_head_bias,
    )

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
    model = create_model(task, cfg.model, load_weights=checkpoint is None and not init)
    if checkpoint is None and init:
        from dgqa_ray.inference import load_model_state

        report = load_pretrained(model, load_model_state(init), skip_head=True)
        if rank == 0:
            worker_line(f"[{task} {run_name}] backbone from {init} ({report.loaded} tensors)")
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
        worker_line(f"[{task} {run_name}] no row count for the schedule: constant learning rate")
    start_epoch, history, session = 0, [], 1
    if checkpoint is not None:
        state, progress = read_checkpoint(checkpoint)
        start_epoch = restore_training_state(state, model, optimizer, scheduler)
        history = list(progress["history"])
        session = int(progress.get("session", 1)) + 1
        if rank == 0:
            worker_line(
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
            batches = crash_after_first_batch(batches, failure, rank)
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
            worker_line(
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
                worker_line(_format_epoch(task, run_name, entry, epochs))
            ray.train.report(
                dict(entry), checkpoint=ray_checkpoint, checkpoint_dir_name=f"epoch_{epoch + 1:03d}"
            )
