"""Models over a set of images, as a distributed Ray Data batch inference: the one inference
path of the project, for both tasks.

    ds = read_dataset(cfg.storage, "livec")                         # ingested rows
    preds = predict_domains(checkpoint_uri, cfg.model, ds, crop=cfg.data.crop_size,
                            batch_size=cfg.train.eval_batch_size, num_cpus=2)
    table = similarity_from_predictions(preds, k=cfg.selection.k)   # selection.similarity_by_domain
    result = select_with_config(table, cfg.selection)                 # mean_prob / topk_vote
    scores = predict_quality(regressor_checkpoint, cfg.model, ds, crop=cfg.data.crop_size)

How it runs: ``evaluation_view`` decodes every image and cuts ``num_crops`` seeded random crops
(Ray Data tasks); a pool of actors (``Predictor``) each loads the model *once* and turns crop
batches into outputs (``engine.predict``, the same forward pass as validation): the domain
classifier's logits, or the quality regressor's score. The per-crop outputs come back to the
driver, a few floats per crop, where the crops of each image are averaged: for the classifier
(``selection.aggregate_crops``) the mean of the crops' softmax is p_j of the paper's eq. 4, the
mean of their raw outputs is what the authors' ``sel_dist.py`` ranks for its top-k votes; for
the regressor the mean score is the image's predicted quality (the paper's 5-crop protocol).
Averaging on the driver, not in the actors, keeps it right when an image's crops land in
different batches or actors.

The weights are read once on the driver, checked against ``model_cfg`` there (a wrong backbone
or class count fails before any actor starts), and handed to the actors through the object
store, so an ``s3://`` checkpoint is downloaded once, not once per actor.

The actors run in the numeric format ``model_cfg`` asks for on their device
(``models.numeric_format``: on GPU channels_last and bf16 autocast; on CPU float32, or bf16
where ``model.cpu_bf16`` allows it), with torch using the ``num_cpus`` threads each actor
reserves on CPU.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from dgqa_ray.config import ModelConfig
from dgqa_ray.models import class_dist_types

STATE_FILE = "state.pt"
"""The weights file in a training checkpoint folder (``train.STATE_FILE``)."""
WEIGHT_SUFFIXES = (".pt", ".pth")


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _state_dict_from(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """A model state dict from a ``training_state`` (``{"model": ..., ...}``) or a bare one."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(
            f"checkpoint: {source} holds neither a model state dict (a mapping of tensors) nor "
            "a training state with one under 'model'"
        )
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _load_bytes(raw: bytes, source: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint: couldn't load {source!r} with torch.load: {e}") from e
    return _state_dict_from(obj, repr(source))


def _weights_file_in(folder_uri: str) -> str:
    from dgqa_ray import storage

    preferred = storage.join(folder_uri, STATE_FILE)
    if storage.is_file(preferred):
        return preferred
    found = [
        uri
        for uri in storage.list_files(folder_uri, suffixes=WEIGHT_SUFFIXES)
        if storage.parent(uri).rstrip("/") == folder_uri.rstrip("/")
    ]
    if len(found) != 1:
        listed = ", ".join(storage.basename(u) for u in found) or "none"
        raise FileNotFoundError(
            f"checkpoint: expected {STATE_FILE} or exactly one .pt/.pth file in {folder_uri!r}, "
            f"found {listed}"
        )
    return found[0]


def load_model_state(checkpoint: Any) -> dict[str, torch.Tensor]:
    """A model's weights (classifier or regressor) from whatever names a checkpoint.

    Args:
        checkpoint: a state dict, or a ``training_state`` dict (weights under ``"model"``); a
            ``ray.train.Checkpoint``; a weights file (``.pt``/``.pth``, local, ``file://`` or
            ``s3://``); or a checkpoint folder holding ``state.pt`` (what ``train/worker.py`` writes)
            or exactly one ``.pt``/``.pth`` file.

    Returns:
        The model's state dict on the CPU (a DDP ``module.`` prefix removed).
    """
    from dgqa_ray import storage

    if isinstance(checkpoint, Mapping):
        return _state_dict_from(checkpoint, "the given mapping")
    if hasattr(checkpoint, "as_directory"):  # ray.train.Checkpoint
        with checkpoint.as_directory() as folder:
            path = _weights_file_in(os.path.abspath(folder))
            return _load_bytes(storage.read_bytes(path), path)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(
            "checkpoint: expected a path or URI, a ray.train.Checkpoint or a state dict, got "
            f"{type(checkpoint).__name__}"
        )
    uri = os.fspath(checkpoint)
    if not storage.is_s3(uri):
        uri = os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))
    if storage.is_file(uri):
        return _load_bytes(storage.read_bytes(uri), uri)
    if not storage.exists(uri):
        raise FileNotFoundError(f"checkpoint: nothing at {uri!r}")
    path = _weights_file_in(uri)
    return _load_bytes(storage.read_bytes(path), path)


TASKS = ("classifier", "regressor")


def build_model(model_cfg: ModelConfig, state: Mapping[str, torch.Tensor], source: str, task: str):
    """The ``task``'s network for ``model_cfg`` with ``state`` loaded (strict), in eval mode; a
    state that does not fit names ``source`` and the model it was expected to fit."""
    from dgqa_ray.models import create_classifier, create_regressor

    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    if task == "classifier":
        model = create_classifier(model_cfg, load_weights=False)
        fits = (
            f"a {model_cfg.backbone} classifier with {model_cfg.num_classes} classes "
            "(model.backbone / model.num_classes)"
        )
    else:
        model = create_regressor(model_cfg, load_weights=False)
        fits = f"a {model_cfg.backbone} quality regressor (one output; model.backbone)"
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint: {source} does not fit {fits}: {str(e).splitlines()[0]}"
        ) from e
    return model.eval()


PREPROCESSED_NETWORK = "2"
"""Where the trained network sits in a ``preprocessed_model`` (its state-dict prefix)."""


def preprocessed_model(model: torch.nn.Module) -> torch.nn.Sequential:
    """``model`` behind the preprocessing it was trained with, as one torch/torchvision module
    (what an MLflow model holds): uint8 RGB crops (B, 3, H, W) in, outputs out; the crops are
    scaled to [0, 1] and ImageNet-normalised inside (as ``models.normalize_uint8`` does on the
    device). ``network_state`` gets the network's weights back."""
    from torchvision.transforms import v2

    from dgqa_ray.models import IMAGENET_MEAN, IMAGENET_STD

    return torch.nn.Sequential(
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        model.eval(),
    ).eval()


def network_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained network's state dict from a ``preprocessed_model``, also after an MLflow
    round trip (``mlflow.pytorch`` saves it as a ``torch.export`` graph, whose state keeps the
    ``2.`` prefix); a bare network's state as it is."""
    state = module.state_dict()
    prefix = PREPROCESSED_NETWORK + "."
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


# --------------------------------------------------------------------------------------------
# The actor
# --------------------------------------------------------------------------------------------


class Predictor:
    """Ray Data callable class: loads a model once, then maps crop batches to its outputs.

    Input batches are ``evaluation_view`` rows (``image`` (B, 3, crop, crop) uint8,
    ``image_id``, ``crop_index``, ``score``); output: ``image_id``, ``crop_index`` and, for the
    classifier, ``logits`` (B, C); for the regressor, ``predicted`` (B,) and the rows' own
    ``score`` (NaN where unknown).
    """

    def __init__(
        self,
        state: Any,
        model_cfg: ModelConfig,
        task: str = "classifier",
        use_gpu: bool = False,
        num_threads: int | None = None,
    ) -> None:
        import ray

        from dgqa_ray.models import numeric_format, prepare_for_device

        if isinstance(state, ray.ObjectRef):
            state = ray.get(state)
        elif isinstance(state, str):  # a checkpoint's URI: read here (restarts read it again)
            state = load_model_state(state)
        if num_threads and not use_gpu:
            torch.set_num_threads(int(num_threads))
        self.task = task
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.amp_dtype, self.channels_last = numeric_format(model_cfg, self.device)
        model = build_model(model_cfg, state, "the checkpoint", task)
        self.model = prepare_for_device(model, self.device, self.channels_last).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from dgqa_ray.engine import predict

        ids, logits = predict(
            self.model,
            [batch],
            self.device,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
        )  # (B,), (B, C) float32; (B,) for the regressor
        out = {
            "image_id": np.asarray(ids, dtype=object),
            "crop_index": np.asarray(batch["crop_index"]),
        }
        if self.task == "classifier":
            out["logits"] = np.asarray(logits, dtype=np.float32).reshape(len(ids), -1)
        else:
            out["predicted"] = np.asarray(logits, dtype=np.float32).reshape(len(ids))
            score = batch.get("score")
            out["score"] = (
                np.full(len(ids), np.nan) if score is None else np.asarray(score, np.float64)
            )
        return out


def _max_actors(concurrency: int | tuple[int, int]) -> int:
    return concurrency if isinstance(concurrency, int) else int(concurrency[1])


def _check_room_for_reads(num_cpus: float, concurrency: int | tuple[int, int]) -> None:
    """Refuse actor pools that would hold every CPU: Ray Data then never schedules the read
    tasks that feed them and the inference waits forever (seen on a 2-CPU cluster with two
    1-CPU actors). Skipped on a cluster that shows no CPUs yet (an autoscaler adds them)."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    needed = num_cpus * _max_actors(concurrency)
    if total > 0 and needed > total - 1:
        most = max(0, int((total - 1) // num_cpus)) if num_cpus > 0 else 0
        raise ValueError(
            f"concurrency x num_cpus: {_max_actors(concurrency)} actor(s) x {num_cpus:g} CPU "
            f"= {needed:g} of the cluster's {total:g} CPUs, leaving none for reading the "
            f"dataset; expected at most {total - 1:g} CPUs for actors (at most {most} actor(s) "
            f"of {num_cpus:g} CPU, or a fractional num_cpus)"
        )


def _compute_strategy(concurrency: int | tuple[int, int]):
    from ray.data import ActorPoolStrategy

    if isinstance(concurrency, bool):
        raise ValueError(f"concurrency: expected an int or (min, max), got {concurrency!r}")
    if isinstance(concurrency, int):
        if concurrency < 1:
            raise ValueError(f"concurrency: expected >= 1 actors, got {concurrency}")
        return ActorPoolStrategy(size=concurrency)
    if (
        isinstance(concurrency, (tuple, list))
        and len(concurrency) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in concurrency)
        and 1 <= concurrency[0] <= concurrency[1]
    ):
        return ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    raise ValueError(
        f"concurrency: expected an int >= 1 or (min, max) with 1 <= min <= max, got {concurrency!r}"
    )


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def _column_names(class_ids: np.ndarray) -> tuple[list[str], list[str]]:
    return [f"prob_{int(c):02d}" for c in class_ids], [f"logit_{int(c):02d}" for c in class_ids]


def _checkpoint_uri(checkpoint: Any) -> str | None:
    """An absolute local path or ``s3://`` URI for a checkpoint given as one, else None."""
    from dgqa_ray import storage

    if not isinstance(checkpoint, (str, os.PathLike)):
        return None
    uri = os.fspath(checkpoint)
    if storage.is_s3(uri):
        return uri
    path = os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))
    return path if os.path.exists(path) else None


def _predict_crops(
    checkpoint: Any,
    model_cfg: ModelConfig,
    task: str,
    ds,
    *,
    crop: int,
    num_crops: int,
    seed: int | None,
    batch_size: int,
    num_cpus: float,
    num_gpus: float,
    concurrency: int | tuple[int, int],
) -> dict[str, np.ndarray]:
    """Every crop's output, sorted by (image, crop) so that the result does not depend on how
    Ray scheduled the batches: ``image_id``, ``crop_index`` and the ``Predictor``'s columns."""
    import ray

    from dgqa_ray.data.pipelines import evaluation_view

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if num_cpus < 0 or num_gpus < 0 or (num_cpus == 0 and num_gpus == 0):
        raise ValueError(
            f"num_cpus, num_gpus: expected non-negative with at least one > 0, got "
            f"{num_cpus}, {num_gpus}"
        )
    strategy = _compute_strategy(concurrency)
    state = load_model_state(checkpoint)
    build_model(model_cfg, state, repr(checkpoint) if isinstance(checkpoint, str) else "it", task)

    _check_room_for_reads(num_cpus, concurrency)
    # Whole images per batch, and one decode block per batch: every batch then has the same
    # number of crops (bar the last). Blocks of 65 crops cut into batches of 64 gave a batch of
    # one crop per block, and each new batch shape costs oneDNN a kernel set-up on CPU
    # (benchmarks/inference.py, 128 images on 2 cores: 6.4 -> 7.6 img/s end to end).
    images_per_batch = max(1, batch_size // num_crops)
    crops = evaluation_view(
        ds, crop=crop, num_crops=num_crops, seed=seed, batch_size=images_per_batch
    )
    outputs = crops.map_batches(
        Predictor,
        fn_constructor_kwargs={
            # A path or URI travels as itself: constructor arguments in the object store make
            # Ray warn that a restarted actor may not find them.
            "state": _checkpoint_uri(checkpoint) or ray.put(state),
            "model_cfg": model_cfg,
            "task": task,
            "use_gpu": num_gpus > 0,
            "num_threads": max(1, int(num_cpus)),
        },
        batch_size=images_per_batch * num_crops,
        batch_format="numpy",
        compute=strategy,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        udf_modifying_row_count=False,
    )
    parts: dict[str, list[np.ndarray]] = {}
    for batch in outputs.iter_batches(batch_size=None, batch_format="numpy"):
        for key, values in batch.items():
            parts.setdefault(key, []).append(np.asarray(values))
    if not parts:
        raise ValueError("ds: the dataset has no rows; expected ingested images")
    columns = {key: np.concatenate(values) for key, values in parts.items()}
    columns["image_id"] = columns["image_id"].astype(str)
    ranked = np.lexsort((columns["crop_index"].astype(np.int64), columns["image_id"]))
    return {key: values[ranked] for key, values in columns.items()}


def predict_domains(
    checkpoint: Any,
    model_cfg: ModelConfig,
    ds,
    *,
    crop: int,
    num_crops: int = 5,
    seed: int | None = 0,
    batch_size: int = 64,
    num_cpus: float = 1,
    num_gpus: float = 0,
    concurrency: int | tuple[int, int] = 1,
) -> pd.DataFrame:
    """Per-image class probabilities of the domain classifier over ``ds``.

    Args:
        checkpoint: the classifier's weights (see ``load_model_state``).
        model_cfg: the model section the classifier was trained with (backbone, num_classes,
            channels_last and amp on GPU).
        ds: a ``ray.data.Dataset`` of ingested rows (``read_dataset``): ``image`` bytes and
            ``image_id`` (``score``/``dist_type`` may be null).
        crop: side of the square crops (``data.crop_size``).
        num_crops: random crops per image (paper: 5), averaged.
        seed: crops depend on (seed, image_id) only, so reruns see the same crops; None draws
            fresh ones.
        batch_size: crops per forward pass.
        num_cpus, num_gpus: resources each actor reserves (on CPU, also its torch threads).
            Decoding and cropping run inside the actors too (Ray Data fuses the two steps).
        concurrency: actors: an int (fixed pool) or (min, max) (autoscaling pool). The actors
            must leave at least one CPU of the cluster free for the read tasks.

    Returns:
        One row per image, sorted by ``image_id``: ``image_id``, ``n_crops``, ``prob_TT`` (mean
        of the crops' softmax) and ``logit_TT`` (mean of the crops' logits) for each class,
        ``TT`` its KADID id (``00`` = pristine with 26 classes). ``domain_arrays`` and
        ``similarity_from_predictions`` read it.
    """
    from dgqa_ray.selection import aggregate_crops

    class_ids = class_dist_types(model_cfg.num_classes)  # (C,)
    crops = _predict_crops(
        checkpoint,
        model_cfg,
        "classifier",
        ds,
        crop=crop,
        num_crops=num_crops,
        seed=seed,
        batch_size=batch_size,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        concurrency=concurrency,
    )
    crop_ids = crops["image_id"]  # (N_crops,)
    crop_logits = crops["logits"].astype(np.float32).reshape(len(crop_ids), -1)  # (N_crops, C)
    if crop_logits.shape[1] != len(class_ids):
        raise AssertionError(f"{crop_logits.shape[1]} outputs for {len(class_ids)} classes")
    image_ids, probabilities, mean_logits = aggregate_crops(crop_ids, crop_logits)
    n_crops = pd.Series(crop_ids).value_counts().reindex(image_ids).to_numpy()
    prob_cols, logit_cols = _column_names(class_ids)
    frame = pd.DataFrame({"image_id": image_ids, "n_crops": n_crops.astype(np.int64)})
    frame = pd.concat(
        [
            frame,
            pd.DataFrame(probabilities, columns=prob_cols),
            pd.DataFrame(mean_logits, columns=logit_cols),
        ],
        axis=1,
    )
    return frame


def predict_quality(
    checkpoint: Any,
    model_cfg: ModelConfig,
    ds,
    *,
    crop: int,
    num_crops: int = 5,
    seed: int | None = 0,
    batch_size: int = 64,
    num_cpus: float = 1,
    num_gpus: float = 0,
    concurrency: int | tuple[int, int] = 1,
) -> pd.DataFrame:
    """Per-image predicted quality of a regressor over ``ds`` (the arguments as for
    ``predict_domains``; ``checkpoint`` holds the regressor's weights).

    Returns:
        One row per image, sorted by ``image_id``: ``image_id``, ``predicted`` (the mean of
        its crops' scores, on the [0, 10] training scale), ``score`` (the row's own normalised
        score; NaN where unknown) and ``crops``, as ``engine.per_image_predictions``.
    """
    from dgqa_ray.engine import per_image_predictions

    crops = _predict_crops(
        checkpoint,
        model_cfg,
        "regressor",
        ds,
        crop=crop,
        num_crops=num_crops,
        seed=seed,
        batch_size=batch_size,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        concurrency=concurrency,
    )
    rows = pd.DataFrame(
        {
            "image_id": crops["image_id"],
            "predicted": crops["predicted"].astype(np.float64),
            "score": crops["score"].astype(np.float64),
        }
    )
    return per_image_predictions(rows)


def domain_arrays(
    predictions: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image_ids (N,), class_ids (C,), probabilities (N, C), logits (N, C))`` from the
    output of ``predict_domains`` (or the same columns read back from a CSV)."""
    prob_cols = [c for c in predictions.columns if c.startswith("prob_")]
    if not prob_cols:
        raise ValueError(
            f"predictions: expected prob_TT columns (predict_domains' output), found "
            f"{list(predictions.columns)}"
        )
    class_ids = np.array([int(c.removeprefix("prob_")) for c in prob_cols], dtype=np.int64)
    logit_cols = [f"logit_{int(c):02d}" for c in class_ids]
    missing = [c for c in logit_cols if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions: missing columns {missing}")
    return (
        predictions["image_id"].astype(str).to_numpy(),
        class_ids,
        predictions[prob_cols].to_numpy(dtype=np.float64),
        predictions[logit_cols].to_numpy(dtype=np.float64),
    )


def similarity_from_predictions(predictions: pd.DataFrame, k: int = 4) -> pd.DataFrame:
    """``selection.similarity_by_domain`` over ``predict_domains`` output; the top-k votes rank
    the mean logits, as the authors' code does."""
    from dgqa_ray.selection import similarity_by_domain

    _, class_ids, probabilities, logits = domain_arrays(predictions)
    return similarity_by_domain(probabilities, class_ids, logits=logits, k=k)


__all__ = [
    "Predictor",
    "build_model",
    "preprocessed_model",
    "network_state",
    "domain_arrays",
    "load_model_state",
    "predict_domains",
    "predict_quality",
    "similarity_from_predictions",
]
