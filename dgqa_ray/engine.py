"""One training epoch, prediction and evaluation in plain PyTorch: no Ray, no MLflow.

Ray Train's worker loop (``dgqa_ray/train/``) calls these with the batches of its dataset
shard; tests call them with lists of dicts. A batch is a dict of arrays, the format Ray Data's
``iter_torch_batches`` / ``iter_batches`` yields:

==============  ==========================  ==============================================
key             dtype, shape                meaning
==============  ==========================  ==============================================
``image``       uint8 (B, 3, H, W)          crops, normalised on the device
``score``       float (B,)                  quality label, higher is better (regressor)
``dist_type``   int (B,)                    KADID id, 0 = pristine (classifier)
``image_id``    str (B,)                    groups the test crops of one image
==============  ==========================  ==============================================

Numpy arrays and torch tensors are both accepted. Usage::

    model = prepare_for_device(create_regressor(cfg.model), device, cfg.model.channels_last)
    optimizer = create_optimizer(cfg.train, model)
    stats = train_one_epoch(model, batches, optimizer, create_loss("regressor"), device,
                            task="regressor")
    metrics = evaluate_regressor(model, eval_batches, device)   # {"srcc", "plcc", "krcc", "n"}
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from dgqa_ray.config import NUM_KADID_TYPES, TrainConfig
from dgqa_ray.metrics import correlations
from dgqa_ray.models import dist_type_to_class, normalize_uint8

log = logging.getLogger(__name__)

TASKS = ("classifier", "regressor")

Batch = Mapping[str, Any]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task: invalid value {task!r}; allowed: {', '.join(TASKS)}")


def resolve_device(use_gpu: bool) -> torch.device:
    """``cuda`` when asked for and present; ``use_gpu`` without CUDA is an error, not a silent
    CPU run that would take days."""
    if use_gpu:
        if not torch.cuda.is_available():
            raise RuntimeError("train.use_gpu is true but CUDA is not available on this node")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for reproducible init and sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global state other libraries draw from
    torch.manual_seed(seed)


def create_loss(task: str) -> nn.Module:
    """Cross-entropy for the classifier (paper eq. 7), L1 for the regressor (paper eq. 8)."""
    _check_task(task)
    return nn.CrossEntropyLoss() if task == "classifier" else nn.L1Loss()


def create_optimizer(
    cfg: TrainConfig, model: nn.Module, lr: float | None = None
) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names over ``model``'s parameters.

    ``adam`` (the paper's) adds ``weight_decay`` as an L2 term to the gradients, like
    ``torch.optim.Adam``; ``adamw`` decouples it; ``sgd`` uses momentum 0.9. On CUDA the fused
    Adam kernels are used (same math, one kernel launch per step).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no trainable parameters")
    lr = cfg.lr if lr is None else float(lr)
    on_cuda = params[0].is_cuda
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay, fused=on_cuda or None)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=lr, weight_decay=cfg.weight_decay, fused=on_cuda or None
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer: invalid value {cfg.optimizer!r}; allowed: adam, adamw, sgd")


def create_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch learning-rate schedule ``cfg.lr_schedule`` names over ``total_steps``.

    ``constant``: None (the optimizer's rate throughout, as the paper states it). ``cosine``: a
    linear warmup from 1/warmup_steps of the rate over ``cfg.warmup_fraction`` of the steps,
    then cosine decay towards 0 (``torch.optim.lr_scheduler.LambdaLR``; step it after every
    optimizer step).
    """
    if cfg.lr_schedule == "constant":
        return None
    if cfg.lr_schedule != "cosine":
        raise ValueError(
            f"lr_schedule: invalid value {cfg.lr_schedule!r}; allowed: constant, cosine"
        )
    total = max(1, int(total_steps))
    warmup = int(round(cfg.warmup_fraction * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def freeze_all_but_head(model: nn.Module) -> int:
    """Freeze every parameter outside the head (``models.head_name``); returns how many
    parameters stay trainable. ``train_one_epoch`` keeps frozen BatchNorm layers in eval mode,
    so their running statistics stay those of the backbone's own training."""
    from dgqa_ray.models import head_name

    head = head_name(model) + "."
    trainable = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(head))
        trainable += param.numel() if param.requires_grad else 0
    return trainable


def _freeze_frozen_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()


def _column(batch: Batch, key: str) -> Any:
    if key not in batch:
        raise KeyError(f"batch: missing column {key!r}; found columns {sorted(batch)}")
    return batch[key]


def _as_tensor(values: Any) -> torch.Tensor:
    if torch.is_tensor(values):
        return values
    return torch.as_tensor(np.asarray(values))


def batch_targets(
    batch: Batch, task: str, device: torch.device, num_classes: int = NUM_KADID_TYPES
) -> torch.Tensor:
    """Class indices (B,) int64 from ``dist_type`` (classifier), or scores (B,) float32."""
    _check_task(task)
    if task == "classifier":
        labels = dist_type_to_class(_as_tensor(_column(batch, "dist_type")), num_classes)
        return labels.to(device, non_blocking=device.type == "cuda")
    scores = _as_tensor(_column(batch, "score")).to(torch.float32).reshape(-1)
    return scores.to(device, non_blocking=device.type == "cuda")


def _head_output(outputs: torch.Tensor, task: str) -> torch.Tensor:
    # Losses and metrics run in float32 even when the forward ran under bf16 autocast.
    outputs = outputs.float()
    return outputs.squeeze(-1) if task == "regressor" else outputs  # (B,) or (B, C)


def _ids(values: Any) -> np.ndarray:
    if torch.is_tensor(values):
        values = values.cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    elif array.dtype == object and array.size and isinstance(array.flat[0], bytes):
        array = np.array([v.decode("utf-8") for v in array.flat])
    return array.astype(str).reshape(-1)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device | str,
    *,
    task: str,
    num_classes: int = NUM_KADID_TYPES,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    max_batches: int | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, float]:
    """One pass over ``batches``, an optimizer step per batch (and a ``scheduler`` step).

    Args:
        model: on ``device`` already (``prepare_for_device``); may be DDP-wrapped.
        batches: dicts with ``image`` uint8 (B, 3, H, W) and ``dist_type`` (classifier) or
            ``score`` (regressor).
        task: ``classifier`` or ``regressor`` (which target column, and accuracy or not).
        num_classes: classifier outputs (25, or 26 with pristine class 0).
        amp_dtype: autocast dtype for the forward pass (``torch.bfloat16`` on GPU) or None.
        channels_last: put inputs in NHWC (match a channels_last model).
        max_batches: stop after this many batches (benchmarks, smoke tests).
        scheduler: stepped after every optimizer step (``create_scheduler``), or None.

    Returns:
        ``loss`` (mean per image), ``images``, ``batches``, ``seconds`` (wall),
        ``data_seconds`` (time spent waiting for batches), ``images_per_second``, and for
        the classifier ``accuracy`` (top-1). A one-image batch is skipped when the model has
        BatchNorm (it cannot train on one image) and not counted.
    """
    _check_task(task)
    device = torch.device(device)
    model.train()
    _freeze_frozen_batchnorm(model)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    images = steps = skipped = 0
    has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    data_seconds = 0.0
    start = time.perf_counter()
    iterator = iter(batches)
    while max_batches is None or steps < max_batches:
        wait = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        data_seconds += time.perf_counter() - wait
        if len(_column(batch, "image")) == 1 and has_batch_norm:
            # BatchNorm cannot train on one image (a shard's last batch can be that small).
            # Ray Train's equal split gives every worker the same batch sizes, so every DDP
            # rank skips it alike and the gradient all-reduces stay paired.
            skipped += 1
            continue
        inputs = normalize_uint8(_column(batch, "image"), device, channels_last)  # (B, 3, H, W)
        targets = batch_targets(batch, task, device, num_classes)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            raw = model(inputs)
        outputs = _head_output(raw, task)
        loss = loss_fn(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = inputs.shape[0]
        # Accumulate on the device: .item() per step would stall the GPU queue.
        total_loss += loss.detach().double() * n
        if task == "classifier":
            correct += (outputs.detach().argmax(dim=1) == targets).sum()
        images += n
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if skipped:
        log.info("train_one_epoch: skipped %d one-image batch(es) (BatchNorm)", skipped)
    if images == 0:
        log.warning("train_one_epoch: the batches were empty; nothing was trained")
    stats = {
        "loss": float(total_loss.item() / images) if images else float("nan"),
        "images": float(images),
        "batches": float(steps),
        "seconds": seconds,
        "data_seconds": data_seconds,
        "images_per_second": images / seconds if seconds > 0 else float("nan"),
    }
    if task == "classifier":
        stats["accuracy"] = float(correct.item() / images) if images else float("nan")
    return stats


@torch.inference_mode()
def _forward_all(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    softmax: bool,
    keep: tuple[str, ...] = (),
) -> tuple[np.ndarray, np.ndarray, dict[str, list[np.ndarray]]]:
    model.eval()
    ids: list[np.ndarray] = []
    outputs: list[torch.Tensor] = []
    extra: dict[str, list[np.ndarray]] = {k: [] for k in keep}
    for batch in batches:
        inputs = normalize_uint8(_column(batch, "image"), device, channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            raw = model(inputs)
        out = raw.float()  # (B, C)
        if softmax:
            out = torch.softmax(out, dim=1)
        outputs.append(out.squeeze(-1) if out.shape[-1] == 1 else out)  # stays on device
        ids.append(_ids(_column(batch, "image_id")))
        for key in keep:
            values = batch.get(key)
            n = inputs.shape[0]
            if values is None:
                extra[key].append(np.full(n, np.nan))
            else:
                extra[key].append(_as_tensor(values).cpu().numpy().astype(np.float64).reshape(-1))
    if not outputs:
        return np.array([], dtype=str), np.empty((0,), dtype=np.float32), extra
    # One device->host copy at the end instead of a sync per batch.
    merged = torch.cat(outputs).cpu().numpy()
    return np.concatenate(ids), merged, extra


def predict(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    *,
    softmax: bool = False,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-crop outputs and the image id of each crop.

    Returns:
        ``(ids (N,) str, outputs)`` with outputs (N,) float32 for a one-output model (the
        regressor) or (N, C) for the classifier: logits, or per-crop softmax probabilities when
        ``softmax``. Average the crops of each image with ``average_by_image``.
    """
    ids, outputs, _ = _forward_all(
        model, batches, torch.device(device), amp_dtype, channels_last, softmax
    )
    return ids, outputs


def average_by_image(ids: Any, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the crops of each image (the paper's 5-crop test protocol).

    Args:
        ids: (N,) image id of each crop.
        outputs: (N,) or (N, C) per-crop values.

    Returns:
        ``(image_ids (M,), means (M,) or (M, C))``, images in order of first appearance,
        means in float64.
    """
    ids = _ids(ids)
    values = np.asarray(outputs, dtype=np.float64)
    if values.shape[0] != ids.shape[0]:
        raise ValueError(
            f"ids and outputs: lengths differ ({ids.shape[0]} ids vs {values.shape[0]} outputs)"
        )
    codes, uniques = pd.factorize(ids, sort=False)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)  # crops per image
    sums = np.zeros((len(uniques),) + values.shape[1:], dtype=np.float64)
    np.add.at(sums, codes, values)
    means = sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.asarray(uniques, dtype=str), means


def predict_scores(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Per-crop regressor predictions next to the labels: ``image_id, predicted, score``.

    ``score`` is NaN where the batches carry none. Per-crop rows (not per-image) so that the
    rows of several workers can be concatenated before the crops are averaged.
    """
    ids, outputs, extra = _forward_all(
        model, batches, torch.device(device), amp_dtype, channels_last, False, keep=("score",)
    )
    if outputs.ndim != 1:
        raise ValueError(
            f"model: expected one output per image (a regressor), got {outputs.shape[1]}"
        )
    scores = np.concatenate(extra["score"]) if extra["score"] else np.empty(0)
    return pd.DataFrame({"image_id": ids, "predicted": outputs.astype(np.float64), "score": scores})


def per_image_predictions(crops: pd.DataFrame) -> pd.DataFrame:
    """Average ``predict_scores`` rows by image: ``image_id, predicted, score, crops``."""
    missing = {"image_id", "predicted", "score"} - set(crops.columns)
    if missing:
        raise ValueError(f"crops: missing columns {sorted(missing)}; found {list(crops.columns)}")
    grouped = crops.groupby("image_id", sort=False)
    table = grouped[["predicted", "score"]].mean()
    table["crops"] = grouped.size()
    return table.reset_index()


def regression_metrics(crops: pd.DataFrame) -> dict[str, float]:
    """SRCC, PLCC, KRCC and n over images, after averaging each image's crops.

    Computed once over all the rows given: concatenate every worker's ``predict_scores`` first
    (per-shard correlations averaged are not the correlation of the whole set).
    """
    images = per_image_predictions(crops)
    if images["score"].isna().any():
        missing = images.loc[images["score"].isna(), "image_id"].head(5).tolist()
        raise ValueError(f"score: missing for {int(images['score'].isna().sum())} images {missing}")
    return correlations(images["predicted"].to_numpy(), images["score"].to_numpy())


def evaluate_regressor(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """``{"srcc", "plcc", "krcc", "n"}`` of the regressor on labelled batches (crops averaged)."""
    crops = predict_scores(model, batches, device, amp_dtype=amp_dtype, channels_last=channels_last)
    return regression_metrics(crops)


@torch.inference_mode()
def evaluate_classifier(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    *,
    num_classes: int = NUM_KADID_TYPES,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean cross-entropy ``loss``, top-1 ``accuracy`` and ``n`` (crops) on labelled batches."""
    device = torch.device(device)
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for batch in batches:
        inputs = normalize_uint8(_column(batch, "image"), device, channels_last)
        targets = batch_targets(batch, "classifier", device, num_classes)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            raw = model(inputs)
        logits = raw.float()
        total += loss_fn(logits, targets).double()
        correct += (logits.argmax(dim=1) == targets).sum()
        n += inputs.shape[0]
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "n": 0.0}
    return {"loss": total.item() / n, "accuracy": correct.item() / n, "n": float(n)}


def predict_classes(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Per-crop classifier logits next to the labels: ``image_id``, ``dist_type``,
    ``dist_level`` (NaN where the batches carry none) and ``logits`` (a float32 array per row).
    Per-crop rows, so that several workers' rows can be concatenated first."""
    ids, logits, extra = _forward_all(
        model,
        batches,
        torch.device(device),
        amp_dtype,
        channels_last,
        False,
        keep=("dist_type", "dist_level"),
    )
    # A worker whose validation shard is empty (more workers than blocks) has no rows.
    logits = np.asarray(logits, dtype=np.float32).reshape(len(ids), -1 if len(ids) else 0)
    return pd.DataFrame(
        {
            "image_id": ids,
            "dist_type": np.concatenate(extra["dist_type"]) if len(ids) else np.empty(0),
            "dist_level": np.concatenate(extra["dist_level"]) if len(ids) else np.empty(0),
            "logits": list(logits),
        }
    )


def classification_metrics(
    crops: pd.DataFrame, num_classes: int = NUM_KADID_TYPES
) -> dict[str, float]:
    """Held-out accuracy of the classifier from ``predict_classes`` rows (all workers').

    Per image, the crops' softmax probabilities are averaged (the 5-crop protocol the selection
    uses, paper eq. 4): ``accuracy`` is top-1 over images, ``top3_accuracy`` top-3,
    ``accuracy_level<L>`` top-1 over the images of level L (1..5; pristine images count in
    neither), ``loss`` the mean cross-entropy per crop, ``images`` and ``crops`` the counts.
    """
    if crops.empty:
        raise ValueError("crops: no rows to score")
    logits = torch.from_numpy(np.stack(crops["logits"].to_numpy()).astype(np.float32))
    targets = dist_type_to_class(crops["dist_type"].to_numpy().astype(np.int64), num_classes)
    loss = float(nn.functional.cross_entropy(logits, targets).item())
    ids, probabilities = average_by_image(crops["image_id"].to_numpy(), torch.softmax(logits, 1))
    first = crops.drop_duplicates("image_id").set_index("image_id").loc[ids]
    truth = dist_type_to_class(first["dist_type"].to_numpy().astype(np.int64), num_classes).numpy()
    ranked = np.argsort(-probabilities, axis=1)
    top1 = ranked[:, 0] == truth
    out = {
        "loss": loss,
        "accuracy": float(top1.mean()),
        "top3_accuracy": float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()),
        "images": float(len(ids)),
        "crops": float(len(crops)),
    }
    levels = first["dist_level"].to_numpy()
    for level in range(1, 6):
        at = levels == level
        if at.any():
            out[f"accuracy_level{level}"] = float(top1[at].mean())
    return out


# --------------------------------------------------------------------------------------------
# Training state (what a checkpoint holds)
# --------------------------------------------------------------------------------------------


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP / ``torch.compile`` wrapper (its state dict has no prefixes)."""
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    metrics: Mapping[str, float] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, Any]:
    """What a checkpoint stores after ``epoch`` (1-based) finished: weights, optimizer, the
    learning-rate schedule's position, epoch."""
    state = {
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
    }
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    return state


def restore_training_state(
    state: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> int:
    """Load a ``training_state`` into ``model`` (and ``optimizer``, ``scheduler``); returns the
    epochs done."""
    missing = {"model", "epoch"} - set(state)
    if missing:
        raise ValueError(f"state: missing keys {sorted(missing)}; found {sorted(state)}")
    unwrap_model(model).load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])
