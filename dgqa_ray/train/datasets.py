"""What a training run trains and validates on: the reference-grouped split of an ingested
dataset (:func:`split_datasets`), the training and evaluation views of each model
(:func:`prepare_datasets`), and how Ray Train shards them over the workers
(:class:`TrainValDataConfig`).

``train`` and ``val`` are Ray Datasets of ingested rows (``read_dataset``). The training view
takes one random crop + flip per image per epoch, the evaluation view ``cfg.data.eval_crops``
seeded crops per image, after keeping only the classifier's classes or the regressor's
``dist_types``. Ray Data decodes in its own tasks and streams uint8 crops to the workers; they
are normalised on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray.train

from dgqa_ray.config import PipelineConfig

# Ray Train's dataset manager unpickles TrainValDataConfig from this module: nothing here
# imports torch at module level (it would cost that process ~500 MB).


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
