"""Score new images with a trained quality regressor: the library call behind ``jobs/score.py``.

    model = load_scoring_model("runs:/<run_id>/model", cfg)    # or a checkpoint folder/URI,
                                                                # or models:/<name>/<version>
    images = list_images("photos/")                            # a folder, a CSV/Parquet table,
                                                                # or an s3:// prefix
    result = score_images(model, images, cfg)                  # on the Ray cluster
    write_table(result.scores, "scores.csv")                   # CSV or Parquet, local or S3

How it runs, in two Ray Data passes over the images, so that nothing spends model compute
before the images are known to be good enough:

1. **Check**: every image is read and fully decoded (``ingest.verify_image``, as ingestion does)
   by Ray Data tasks; unreadable or corrupt ones are counted, listed and skipped. When their
   share exceeds ``max_bad_fraction`` (default ``data.max_bad_fraction``) nothing is scored
   and the error lists them.
2. **Score**: the good images go through the project's one inference path
   (``inference.predict_quality``: a Ray Data actor pool, ``data.eval_crops`` seeded crops per
   image averaged, ``train.eval_batch_size`` crops per batch, GPU with ``train.use_gpu``), the
   same path and the same crops as the pipeline's target evaluation, so a pipeline run's
   DGQA regressor scores its own target here exactly as it did there.

A model is a training checkpoint (a folder holding ``state.pt`` and ``progress.json``, as
``train/worker.py`` writes; or a bare ``.pt``/``.pth`` file, read with the config's backbone) or an
MLflow model logged by the pipeline (``runs:/``, ``models:/``, or a local folder holding an
``MLmodel`` file). Either way the backbone and the crop size come from the model's own record
(``progress.json`` or the MLflow model's metadata); the config gives the rest. Scores are on
the project's training scale: 0 (worst) to 10 (best).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig
from dgqa_ray.data.adapters.base import IMAGE_SUFFIXES, ImageListing

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
SCORE_COLUMNS = ("image_id", "path", "predicted", "crops")
"""The columns of a scores table: the image, where it was read, its predicted quality (0-10,
higher is better: the mean of its crops) and how many crops were averaged."""
CHECK_ROWS_PER_TASK = 32
"""Images one check (or read) task handles: small enough to spread over every CPU."""
READ_THREADS = 8
"""Parallel reads inside one task (S3 reads are round trips)."""

log = logging.getLogger(__name__)


class ScoringError(ValueError):
    """Bad input for scoring: the model, the images, or too many unreadable images."""


@dataclass
class ScoringModel:
    """A regressor's weights and what is needed to run them."""

    state: dict
    model_cfg: object  # config.ModelConfig with the model's own backbone
    crop_size: int
    source: str  # the URI it was loaded from
    kind: str  # "checkpoint" or "mlflow"
    record: dict = field(default_factory=dict)  # progress.json or the MLflow model's metadata

    def describe(self) -> str:
        return (
            f"{self.kind} {self.source} ({self.model_cfg.backbone} regressor, "
            f"{self.crop_size}x{self.crop_size} crops)"
        )


@dataclass
class ScoringResult:
    scores: pd.DataFrame  # SCORE_COLUMNS, one row per scored image, sorted by image_id
    unreadable: pd.DataFrame  # image_id, path, error: the images skipped
    n_listed: int
    seconds: float


# -- the model ------------------------------------------------------------------------------


def scoring_config(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` as scoring uses it: one predictor actor in place of ``train.num_workers``
    training workers, so that ``train.init_ray_for_training`` sizes that actor (with
    ``train.cpus_per_worker: 0``, every CPU of the cluster but one, left to Ray Data's reads)
    and never refuses a cluster for training workers that scoring does not start."""
    if cfg.train.num_workers == 1:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_workers=1))


def is_mlflow_uri(uri: str) -> bool:
    """True for an MLflow model URI, or a local folder that holds an MLflow model."""
    if uri.startswith(MLFLOW_SCHEMES):
        return True
    return not storage.is_s3(uri) and os.path.isfile(os.path.join(uri, "MLmodel"))


def _model_cfg(cfg: PipelineConfig, backbone: str | None):
    model_cfg = cfg.model
    if backbone and backbone != model_cfg.backbone:
        model_cfg = dataclasses.replace(model_cfg, backbone=str(backbone))
    return model_cfg


def _require_regressor(task: str | None, source: str) -> None:
    if task is not None and task != "regressor":
        raise ScoringError(
            f"--model: {source} is a {task} model; scoring needs a quality regressor (a "
            "pipeline run's regressor checkpoint, or its MLflow model)"
        )


def _load_mlflow_model(uri: str, cfg: PipelineConfig) -> ScoringModel:
    import mlflow
    import mlflow.pytorch

    from dgqa_ray.inference import network_state
    from dgqa_ray.tracking import fluent_tracking_uri, redact, resolve_tracking_uri

    with fluent_tracking_uri(resolve_tracking_uri(cfg.tracking.tracking_uri)):
        try:
            info = mlflow.models.get_model_info(uri)
        except Exception as e:  # noqa: BLE001 - MLflow raises many types for a bad URI
            raise ScoringError(
                f"--model: couldn't open the MLflow model {uri!r} in the store "
                f"{redact('uri', cfg.tracking.tracking_uri)}: {str(e).splitlines()[0]}"
            ) from e
        record = dict(info.metadata or {})
        _require_regressor(record.get("task"), uri)
        module = mlflow.pytorch.load_model(uri, map_location="cpu")
    crop = int(record.get("crop_size") or cfg.data.crop_size)
    return ScoringModel(
        network_state(module), _model_cfg(cfg, record.get("backbone")), crop, uri, "mlflow", record
    )


def _load_checkpoint(uri: str, cfg: PipelineConfig) -> ScoringModel:
    from dgqa_ray.inference import load_model_state
    from dgqa_ray.train import PROGRESS_FILE

    uri = storage.normalize(uri)
    if not storage.exists(uri):
        raise ScoringError(f"--model: nothing at {uri!r} (a checkpoint folder or MLflow URI)")
    folder = uri if not storage.is_file(uri) else storage.parent(uri)
    progress_uri = storage.join(folder, PROGRESS_FILE)
    record = json.loads(storage.read_text(progress_uri)) if storage.is_file(progress_uri) else {}
    _require_regressor(record.get("task"), uri)
    state = load_model_state(uri)
    crop = int(record.get("crop_size") or cfg.data.crop_size)
    return ScoringModel(
        state, _model_cfg(cfg, record.get("backbone")), crop, uri, "checkpoint", record
    )


def load_scoring_model(uri: str, cfg: PipelineConfig) -> ScoringModel:
    """The regressor that ``uri`` names, checked to fit its backbone (before any image is
    read): a checkpoint folder/file (local or ``s3://``) or an MLflow model URI (resolved in
    ``cfg.tracking.tracking_uri``'s store)."""
    from dgqa_ray.inference import build_model

    uri = str(uri).strip()
    if not uri:
        raise ScoringError("--model: expected a checkpoint folder/URI or an MLflow model URI")
    model = _load_mlflow_model(uri, cfg) if is_mlflow_uri(uri) else _load_checkpoint(uri, cfg)
    try:
        build_model(model.model_cfg, model.state, repr(uri), "regressor")
    except ValueError as e:
        raise ScoringError(f"--model: {e}") from e
    return model


# -- the images -----------------------------------------------------------------------------


def list_images(images: str, *, path_column: str = "path", id_column: str | None = None):
    """The images to score: ``image_id`` and ``path`` per image.

    ``images`` is a folder or an ``s3://`` prefix (every image file below it, recursively;
    ``image_id`` is its path relative to the folder), or a CSV/Parquet table with a
    ``path_column`` (relative paths resolved against the table's folder; ``image_id`` from
    ``id_column`` or the path as written), read by the ``custom`` adapter. Every image a table
    lists must exist (one error lists the missing ones).
    """
    from dgqa_ray.data.adapters.custom import CustomAdapter

    spec = str(images).strip()
    if not spec:
        raise ScoringError("--images: expected a folder, an s3:// prefix or a CSV/Parquet table")
    spec = storage.normalize(spec)
    if spec.lower().endswith(TABLE_SUFFIXES):
        if not storage.is_file(spec):
            raise ScoringError(f"--images: no table at {spec!r}")
        adapter = CustomAdapter(
            spec, path_column=path_column, id_column=id_column, dataset_name="scoring"
        )
        index = adapter.index()
        frame = index[["image_id", "path"]]
    else:
        if not storage.exists(spec):
            raise ScoringError(f"--images: no folder or prefix at {spec!r}")
        if storage.is_file(spec):
            raise ScoringError(
                f"--images: {spec!r} is a file; expected a folder, an s3:// prefix, or a table "
                f"ending in {', '.join(TABLE_SUFFIXES)}"
            )
        listing = ImageListing.of(spec, dataset="scoring")
        frame = pd.DataFrame(
            sorted(listing.by_relpath.items()), columns=["image_id", "path"], dtype=object
        )
    if frame.empty:
        raise ScoringError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {spec!r}")
    return frame.reset_index(drop=True)


def _read_all(paths: list[str]) -> list[tuple[bytes | None, str]]:
    from dgqa_ray.data.ingest import read_or_error

    def read(path: str) -> tuple[bytes | None, str]:
        data, error = read_or_error(path)
        return data, error or ""

    with ThreadPoolExecutor(max_workers=min(READ_THREADS, max(1, len(paths)))) as pool:
        return list(pool.map(read, paths))


def _check_batch(batch: pd.DataFrame, max_megapixels: float) -> pd.DataFrame:
    from dgqa_ray.data.ingest import verify_image

    errors = []
    for data, error in _read_all(batch["path"].tolist()):
        if data is not None:
            try:
                verify_image(data, max_megapixels)
            except Exception as e:  # noqa: BLE001 - reported per image
                error = f"does not decode: {type(e).__name__}: {e}"
        errors.append(error)
    return pd.DataFrame(
        {"image_id": batch["image_id"], "path": batch["path"], "error": errors}, dtype=object
    )


def _read_batch(batch: pd.DataFrame) -> pa.Table:
    read = _read_all(batch["path"].tolist())
    for (data, error), path in zip(read, batch["path"], strict=True):
        if data is None:  # it was readable in the check pass a moment ago
            raise OSError(f"images: {path} could not be read any more: {error}")
    n = len(batch)
    return pa.table(
        {
            "image": pa.array([data for data, _ in read], type=pa.binary()),
            "image_id": pa.array(batch["image_id"].astype(str).tolist(), type=pa.string()),
            "score": pa.array(np.full(n, np.nan), type=pa.float64()),
            "dist_type": pa.nulls(n, type=pa.int16()),
        }
    )


def _images_dataset(frame: pd.DataFrame):
    import ray.data

    frame = frame.reset_index(drop=True)
    chunks = [
        frame.iloc[start : start + CHECK_ROWS_PER_TASK]
        for start in range(0, len(frame), CHECK_ROWS_PER_TASK)
    ]
    return ray.data.from_pandas(chunks or [frame])  # one block per chunk: one task each


def check_images(
    images: pd.DataFrame, *, max_bad_fraction: float, max_megapixels: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good, unreadable): every image read and decoded by Ray Data tasks. Raises
    ``ScoringError`` (listing the first ones) when the unreadable share exceeds
    ``max_bad_fraction``, or when none is readable."""
    checked = (
        _images_dataset(images[["image_id", "path"]])
        .map_batches(
            _check_batch,
            batch_size=CHECK_ROWS_PER_TASK,
            batch_format="pandas",
            fn_kwargs={"max_megapixels": max_megapixels},
        )
        .to_pandas()
    )
    bad = checked[checked["error"] != ""].sort_values("image_id").reset_index(drop=True)
    good = checked[checked["error"] == ""][["image_id", "path"]].reset_index(drop=True)
    share = len(bad) / max(1, len(checked))
    if good.empty or share > max_bad_fraction:
        listed = "; ".join(f"{r.path}: {r.error}" for r in bad.head(5).itertuples())
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ScoringError(
            f"--images: {len(bad)} of {len(checked)} images are unreadable ({share:.1%}, more "
            f"than max_bad_fraction={max_bad_fraction:g}); nothing was scored: {listed}{more}"
        )
    return good, bad


# -- scoring --------------------------------------------------------------------------------


def score_images(
    model: ScoringModel,
    images: pd.DataFrame,
    cfg: PipelineConfig,
    *,
    max_bad_fraction: float | None = None,
) -> ScoringResult:
    """Check, then score ``images`` (``list_images``) with ``model`` on the running Ray
    (``train.init_ray_for_training`` first); see the module docstring."""
    from dgqa_ray.inference import predict_quality
    from dgqa_ray.pipeline import inference_options

    started = time.monotonic()
    limit = cfg.data.max_bad_fraction if max_bad_fraction is None else float(max_bad_fraction)
    log.info(f"checking {len(images)} image(s): every one read and decoded")
    good, bad = check_images(
        images, max_bad_fraction=limit, max_megapixels=cfg.data.max_image_megapixels
    )
    if len(bad):
        log.info(
            f"skipping {len(bad)} unreadable image(s) ({len(bad) / len(images):.1%}, at most "
            f"{limit:g} allowed): "
            + "; ".join(f"{r.path}: {r.error}" for r in bad.head(3).itertuples())
        )
    options = {**inference_options(cfg), "crop": model.crop_size}
    log.info(f"scoring {len(good)} image(s) x {options['num_crops']} crops with {model.describe()}")
    ds = _images_dataset(good).map_batches(
        _read_batch, batch_size=CHECK_ROWS_PER_TASK, batch_format="pandas"
    )
    predicted = predict_quality(model.state, model.model_cfg, ds, **options)
    paths = good.set_index("image_id")["path"]
    scores = pd.DataFrame(
        {
            "image_id": predicted["image_id"].astype(str),
            "path": paths.reindex(predicted["image_id"].astype(str)).to_numpy(),
            "predicted": predicted["predicted"].astype(np.float64),
            "crops": predicted["crops"].astype(np.int64),
        }
    )
    seconds = time.monotonic() - started
    log.info(
        f"scored {len(scores)} image(s) in {seconds:.1f} s ({len(scores) / seconds:.1f} img/s)"
    )
    return ScoringResult(scores, bad, len(images), seconds)


def table_format(out: str) -> str:
    """``"csv"`` or ``"parquet"``, by the suffix of ``out`` (a scores table's path; any of
    ``TABLE_SUFFIXES``, any case); ``ScoringError`` for another one. ``jobs/score.py`` checks
    ``--out`` with it before any work, ``write_table`` picks the format with it."""
    name = str(out).strip().lower()
    if name.endswith(TABLE_SUFFIXES):
        return "csv" if name.endswith(".csv") else "parquet"
    raise ScoringError(f"--out: {out!r} must end in .csv, .parquet or .pq")


def write_table(frame: pd.DataFrame, out: str) -> str:
    """``frame`` as CSV or Parquet (by ``out``'s suffix), local or ``s3://``, written
    atomically (a reader never sees half a file). Returns the URI written."""
    import io

    uri = storage.normalize(str(out).strip())
    if table_format(out) == "csv":
        data = frame.to_csv(index=False).encode()
    else:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    storage.write_bytes_atomic(uri, data)
    return uri


def unreadable_uri(out: str) -> str:
    """Where the list of skipped images goes: beside ``out``, ``<stem>.unreadable.csv``."""
    stem = str(out).rsplit(".", 1)[0]
    return f"{stem}.unreadable.csv"


__all__ = [
    "SCORE_COLUMNS",
    "ScoringError",
    "ScoringModel",
    "ScoringResult",
    "check_images",
    "is_mlflow_uri",
    "list_images",
    "load_scoring_model",
    "scoring_config",
    "score_images",
    "table_format",
    "unreadable_uri",
    "write_table",
]
