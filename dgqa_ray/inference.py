"""The domain classifier over a target set, as a distributed Ray Data batch inference.

    ds = read_dataset(cfg.storage, "livec")                         # ingested rows
    preds = predict_domains(checkpoint_uri, cfg.model, ds, crop=cfg.data.crop_size,
                            batch_size=cfg.train.eval_batch_size, num_cpus=2)
    table = similarity_from_predictions(preds, k=cfg.selection.k)   # selection.similarity_by_domain
    result = select_with_config(table, cfg.selection)                 # mean_prob / topk_vote

How it runs: ``evaluation_view`` decodes every image and cuts ``num_crops`` seeded random crops
(Ray Data tasks); a pool of actors (``ClassifierPredictor``) each loads the model *once* and
turns crop batches into logits (``engine.predict``, the same forward pass as validation). The
per-crop logits come back to the driver, a few floats per crop, where the crops of each image
are averaged (``selection.aggregate_crops``): the mean of the crops' softmax is p_j of the
paper's eq. 4, the mean of their raw outputs is what the authors' ``sel_dist.py`` ranks for its
top-k votes. Averaging on the driver, not in the actors, keeps it right when an image's crops
land in different batches or actors.

The weights are read once on the driver, checked against ``model_cfg`` there (a wrong backbone
or class count fails before any actor starts), and handed to the actors through the object
store, so an ``s3://`` checkpoint is downloaded once, not once per actor.

On GPU (``num_gpus > 0``) the actors run channels_last under bf16 autocast as ``model_cfg``
says; on CPU in float32, with torch using the ``num_cpus`` threads each actor reserves.
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
    from dgqa_ray.data import storage

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


def load_classifier_state(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The classifier's weights from whatever names a checkpoint.

    Args:
        checkpoint: a state dict, or a ``training_state`` dict (weights under ``"model"``); a
            ``ray.train.Checkpoint``; a weights file (``.pt``/``.pth``, local, ``file://`` or
            ``s3://``); or a checkpoint folder holding ``state.pt`` (what ``train.py`` writes)
            or exactly one ``.pt``/``.pth`` file.

    Returns:
        The model's state dict on the CPU (a DDP ``module.`` prefix removed).
    """
    from dgqa_ray.data import storage

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


def _build_model(model_cfg: ModelConfig, state: Mapping[str, torch.Tensor], source: str):
    from dgqa_ray.models import create_classifier

    model = create_classifier(model_cfg, load_weights=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint: {source} does not fit a {model_cfg.backbone} classifier with "
            f"{model_cfg.num_classes} classes (model.backbone / model.num_classes): "
            f"{str(e).splitlines()[0]}"
        ) from e
    return model.eval()


# --------------------------------------------------------------------------------------------
# The actor
# --------------------------------------------------------------------------------------------


class ClassifierPredictor:
    """Ray Data callable class: loads the classifier once, then maps crop batches to logits.

    Input batches are ``evaluation_view`` rows (``image`` (B, 3, crop, crop) uint8,
    ``image_id``, ``crop_index``); output: ``image_id``, ``crop_index``, ``logits`` (B, C).
    """

    def __init__(
        self,
        state: Any,
        model_cfg: ModelConfig,
        use_gpu: bool = False,
        num_threads: int | None = None,
    ) -> None:
        import ray

        from dgqa_ray.models import numeric_format, prepare_for_device

        if isinstance(state, ray.ObjectRef):
            state = ray.get(state)
        if num_threads and not use_gpu:
            torch.set_num_threads(int(num_threads))
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.amp_dtype, self.channels_last = numeric_format(model_cfg, self.device)
        model = _build_model(model_cfg, state, "the checkpoint")
        self.model = prepare_for_device(model, self.device, self.channels_last).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from dgqa_ray.engine import predict

        ids, logits = predict(
            self.model,
            [batch],
            self.device,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
        )  # (B,), (B, C) float32
        return {
            "image_id": np.asarray(ids, dtype=object),
            "crop_index": np.asarray(batch["crop_index"]),
            "logits": np.asarray(logits, dtype=np.float32).reshape(len(ids), -1),
        }


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
        checkpoint: the classifier's weights (see ``load_classifier_state``).
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
    import ray

    from dgqa_ray.data.pipelines import evaluation_view
    from dgqa_ray.selection import aggregate_crops

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if num_cpus < 0 or num_gpus < 0 or (num_cpus == 0 and num_gpus == 0):
        raise ValueError(
            f"num_cpus, num_gpus: expected non-negative with at least one > 0, got "
            f"{num_cpus}, {num_gpus}"
        )
    strategy = _compute_strategy(concurrency)
    state = load_classifier_state(checkpoint)
    _build_model(model_cfg, state, repr(checkpoint) if isinstance(checkpoint, str) else "it")
    class_ids = class_dist_types(model_cfg.num_classes)  # (C,)

    _check_room_for_reads(num_cpus, concurrency)
    crops = evaluation_view(ds, crop=crop, num_crops=num_crops, seed=seed)
    logits_ds = crops.map_batches(
        ClassifierPredictor,
        fn_constructor_kwargs={
            "state": ray.put(state),
            "model_cfg": model_cfg,
            "use_gpu": num_gpus > 0,
            "num_threads": max(1, int(num_cpus)),
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=strategy,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        udf_modifying_row_count=False,
    )
    ids, order, logits = [], [], []
    for batch in logits_ds.iter_batches(batch_size=None, batch_format="numpy"):
        ids.append(np.asarray(batch["image_id"]).astype(str))
        order.append(np.asarray(batch["crop_index"], dtype=np.int64))
        logits.append(np.asarray(batch["logits"], dtype=np.float32))
    if not ids:
        raise ValueError("ds: the dataset has no rows; expected ingested target images")
    crop_ids = np.concatenate(ids)  # (N_crops,)
    crop_index = np.concatenate(order)
    crop_logits = np.concatenate(logits).reshape(len(crop_ids), -1)  # (N_crops, C)
    if crop_logits.shape[1] != len(class_ids):
        raise AssertionError(f"{crop_logits.shape[1]} outputs for {len(class_ids)} classes")
    # Sorted by (image, crop): the result does not depend on how Ray scheduled the batches.
    ranked = np.lexsort((crop_index, crop_ids))
    crop_ids, crop_logits = crop_ids[ranked], crop_logits[ranked]
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
    "ClassifierPredictor",
    "domain_arrays",
    "load_classifier_state",
    "predict_domains",
    "similarity_from_predictions",
]
