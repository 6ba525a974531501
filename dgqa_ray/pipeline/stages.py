"""The stages the pipeline and the searches share: the classifier, the selection of source
domains on the target, and one regressor trained and evaluated on the target per variant and
split. Each is reused on a rerun unless ``cfg.redo`` names it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig, save_config

from .mlflow_logging import log_dataset_inputs, log_trained_model
from .roles import (
    RoleData,
    dataset_key,
    ingest_all,
    resolve_data,
)

log = logging.getLogger(__name__)


def say(text: str) -> None:
    """One line of the pipeline's progress (the project's logger, ``console.py``)."""
    log.info(f"[pipeline] {text}")


def inference_options(cfg: PipelineConfig) -> dict[str, Any]:
    """The config's settings for every inference over a dataset (selection, target
    evaluation): crop side, ``data.eval_crops`` crops per image, ``train.eval_batch_size``, and
    what each actor reserves: a GPU and a CPU with ``train.use_gpu``, else a training worker's
    CPUs (the workers are gone by then; one CPU stays free for Ray Data's reads)."""
    resources = (
        {"num_cpus": 1, "num_gpus": 1}
        if cfg.train.use_gpu
        else {"num_cpus": max(1, cfg.train.cpus_per_worker), "num_gpus": 0}
    )
    return {
        "crop": cfg.data.crop_size,
        "num_crops": cfg.data.eval_crops,
        "batch_size": cfg.train.eval_batch_size,
        **resources,
    }


def evaluate_on_target(checkpoint_uri: str, cfg: PipelineConfig, target_ds) -> pd.DataFrame:
    """Per-image predictions (``image_id, predicted, score, crops``) of a regressor checkpoint
    over the target, ``cfg.data.eval_crops`` seeded crops per image averaged: a Ray Data actor
    pool (``inference.predict_quality``), the same path as the selection's classifier."""
    from dgqa_ray.inference import predict_quality

    return predict_quality(checkpoint_uri, cfg.model, target_ds, **inference_options(cfg))


@dataclass
class SelectionOutcome:
    selection: Any  # selection.SelectionResult of the configured rule
    other: Any  # the other rule's result, for comparison
    table: pd.DataFrame
    files: dict[str, str]


def select_target_domains(
    cfg: PipelineConfig,
    checkpoint: str,
    target_ds,
    out_dir: str | Path,
    *,
    reuse: bool = True,
    target_key: str = "",
) -> SelectionOutcome:
    """The selection stage: F_D over the target (Ray Data batch inference), the similarity
    table (reused from ``out_dir`` when ``reuse`` and it was made by the same checkpoint on the
    same target version, ``target_key``), both rules, and the files ``similarity.csv``,
    ``selection.json``, ``similarity.png`` under ``out_dir``."""
    from dgqa_ray.inference import predict_domains, similarity_from_predictions
    from dgqa_ray.selection import (
        read_similarity_table,
        select_domains,
        select_with_config,
        write_selection,
    )

    table_path = Path(out_dir) / "similarity.csv"
    # The table is reused only for the checkpoint and target version that made it (a
    # retrained classifier, another storage or another target makes a new one).
    made_by = Path(out_dir) / "classifier_checkpoint.txt"
    key = f"{checkpoint}\n{target_key}".strip()
    same = made_by.exists() and made_by.read_text().strip() == key
    if reuse and table_path.exists() and same:
        table = read_similarity_table(table_path)
        say(f"selection: reusing the similarity table {table_path}")
    else:
        predictions = predict_domains(checkpoint, cfg.model, target_ds, **inference_options(cfg))
        table = similarity_from_predictions(predictions, k=cfg.selection.k)
    selection = select_with_config(table, cfg.selection)
    other = select_domains(
        table,
        rule="topk_vote" if selection.rule == "mean_prob" else "mean_prob",
        k=cfg.selection.k,
        share=cfg.selection.share,
        vote_denominator=cfg.selection.vote_denominator,
        share_decimals=cfg.selection.share_decimals,
    )
    files = write_selection(selection, table, str(out_dir))
    made_by.parent.mkdir(parents=True, exist_ok=True)
    made_by.write_text(key + "\n")
    return SelectionOutcome(selection, other, table, files)


@dataclass
class PreparedRun:
    """Everything up to the selection: what a pipeline run, a tau sweep or a greedy search
    start from (``prepare_stages``)."""

    cfg: PipelineConfig
    run_dir: Path
    roles: dict[str, RoleData]
    target_types: list[int] | None
    classifier: Any  # train.TrainResult
    outcome: SelectionOutcome
    target_ds: Any  # the ingested target as a Ray Dataset

    @property
    def source(self) -> RoleData:
        return self.roles["source"]

    @property
    def target(self) -> RoleData:
        return self.roles["target"]


def start_over(cfg: PipelineConfig, stage: str, run_name: str) -> None:
    """``--redo <stage>``: a training starts from epoch 0 (its old checkpoints are removed)."""
    from dgqa_ray.train import run_dir_uri

    if cfg.redo_stage(stage):
        folder = run_dir_uri(cfg.storage, run_name)
        if storage.exists(folder):
            say(f"redo {stage}: removing the checkpoints of {run_name} at {folder}")
            storage.delete_tree(folder)


def train_classifier_stage(cfg: PipelineConfig, roles: dict[str, RoleData], tracker):
    """F_D on the classifier dataset (split 0's training part; its held-out part validates)."""
    from dgqa_ray.train import fit_classifier, split_datasets

    data = roles["classifier"]
    name = cfg.classifier_run_name
    start_over(cfg, "classifier", name)
    with tracker.nested("classifier") as run:
        datasets = split_datasets(cfg, data.storage_uri, data.dataset, 0)
        result = fit_classifier(cfg, datasets, run_name=name)
        for epoch, entry in enumerate(result.history):
            run.log_metrics(entry, step=epoch)
        run.log_params({"checkpoint": result.best_checkpoint, "dataset": data.dataset})
        log_dataset_inputs(run, [(data, "training")])
        log_trained_model(run, cfg, result.best_checkpoint, "classifier")
    say(result.summary())
    return result


def selection_stage(
    cfg, classifier, target_ds, run_dir: Path, tracker, target_key: str = ""
) -> SelectionOutcome:
    """The selection, logged as its own nested run (an empty selection is the caller's to
    refuse: the pipeline stops on it, a search just reports it)."""
    from dgqa_ray.selection import distortion_names

    names = distortion_names()
    with tracker.nested("selection") as run:
        outcome = select_target_domains(
            cfg,
            classifier.best_checkpoint,
            target_ds,
            run_dir / "selection",
            reuse=not (cfg.redo_stage("selection") or cfg.redo_stage("classifier")),
            target_key=target_key,
        )
        selection, other = outcome.selection, outcome.other
        selected = [int(t) for t in selection.selected]
        run.log_params(
            {
                "rule": selection.rule,
                **{f"rule_{k}": v for k, v in selection.params.items()},
                "selected_types": ",".join(map(str, selected)),
                "n_selected": len(selected),
                f"{other.rule}_selected_types": ",".join(map(str, other.selected)),
            }
        )
        run.log_metrics({"n_selected": len(selected)})
        for path in outcome.files.values():
            run.log_artifact(path)
    say(
        f"selection ({selection.rule}): {len(selected)} type(s): "
        + ", ".join(f"#{t} {names.get(t, t)}" for t in selected),
    )
    say(f"  ({other.rule} would select: {', '.join(map(str, other.selected))})")
    return outcome


def prepare_stages(cfg: PipelineConfig, tracker, timings=None) -> PreparedRun:
    """Data, classifier and selection (each reused when finished): the common start of the
    pipeline and of the searches (``dgqa_ray.search``)."""
    from dgqa_ray.data.pipelines import read_dataset
    from dgqa_ray.train import fit_to_cluster

    cfg = fit_to_cluster(cfg, quiet=True)
    timings = {} if timings is None else timings
    run_dir = Path(cfg.output_dir) / "runs" / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        save_config(cfg, str(run_dir / "config.yaml"))

    t0 = time.monotonic()
    roles, target_types = resolve_data(cfg, run_dir)
    ingest_all(cfg, roles)
    timings["data"] = time.monotonic() - t0

    t0 = time.monotonic()
    classifier = train_classifier_stage(cfg, roles, tracker)
    timings["classifier"] = time.monotonic() - t0

    t0 = time.monotonic()
    target_ds = read_dataset(roles["target"].storage_uri, roles["target"].dataset)
    outcome = selection_stage(
        cfg, classifier, target_ds, run_dir, tracker, target_key=dataset_key(roles["target"])
    )
    timings["selection"] = time.monotonic() - t0
    return PreparedRun(cfg, run_dir, roles, target_types, classifier, outcome, target_ds)


def domain_key(dist_types: Sequence[int] | None) -> str:
    """A stable name for a domain set: ``all``, or the sorted ids joined (``1-3-17``)."""
    if dist_types is None:
        return "all"
    return "-".join(str(t) for t in sorted({int(t) for t in dist_types})) or "none"


def regressor_run_name(
    run_name: str, variant: str, dist_types: Sequence[int] | None, split: int
) -> str:
    """The training run of one regressor. A variant trained on chosen types carries them in its
    name (``demo-regressor-dgqa-1-3-17-split0``; a long set by its hash), so a changed selection
    or target trains a new run, and switching back finds the old one."""
    if dist_types is None:
        return f"{run_name}-regressor-{variant}-split{split}"
    key = domain_key(dist_types)
    if len(key) > 32:
        import hashlib

        key = "h" + hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{run_name}-regressor-{variant}-{key}-split{split}"


def regressor_init_checkpoint(cfg: PipelineConfig, classifier) -> str | None:
    """The checkpoint whose backbone starts every regressor: the domain classifier's best one
    with ``model.regressor_init: classifier``, else None (``model.pretrained`` or random)."""
    return classifier.best_checkpoint if cfg.model.regressor_init == "classifier" else None


def regressor_variants(
    cfg: PipelineConfig, selected: Sequence[int], target_types: Sequence[int] | None
) -> dict[str, list[int] | None]:
    """The regressors of each split: ``baseline`` (all 25 types; unless ``eval.baseline`` is
    off), ``dgqa`` (the selection) and, when the target's true types are known and
    ``eval.oracle``, ``oracle`` (exactly those)."""
    variants: dict[str, list[int] | None] = {"baseline": None} if cfg.eval.baseline else {}
    variants["dgqa"] = [int(t) for t in selected]
    if target_types and cfg.eval.oracle:
        variants["oracle"] = sorted(int(t) for t in target_types)
    return variants


def train_and_evaluate(
    cfg: PipelineConfig,
    source: RoleData,
    target_ds,
    dist_types: Sequence[int] | None,
    split: int,
    run_name: str,
    eval_dir: str | Path,
    init_checkpoint: str | None = None,
    target_key: str = "",
) -> tuple[dict[str, float], pd.DataFrame, Any]:
    """One regressor: trained (or resumed, or reused) on ``dist_types`` of source split
    ``split`` (its backbone from ``init_checkpoint`` when given), then scored on the target. The
    per-image predictions are cached in ``<eval_dir>/<run_name>.csv`` and reused while the
    regressor and the target version (``target_key``, ``dataset_key``) are unchanged.

    Returns ``({"srcc", "plcc", "krcc", "n_scored"}, per-image predictions,
    train.TrainResult)``: see ``target_metrics`` (NaN correlations on an unlabelled target).
    """
    from dgqa_ray.train import fit_regressor, split_datasets

    datasets = split_datasets(cfg, source.storage_uri, source.dataset, split)
    result = fit_regressor(
        cfg, datasets, run_name=run_name, dist_types=dist_types, init_checkpoint=init_checkpoint
    )
    cache = Path(eval_dir) / f"{run_name}.csv"
    made_by = cache.with_suffix(".key")
    key = f"{result.best_checkpoint}\n{target_key}"
    fresh = made_by.exists() and made_by.read_text() == key
    if cache.exists() and fresh and result.epochs_trained_now == 0:
        per_image = pd.read_csv(cache)
    else:
        per_image = evaluate_on_target(result.best_checkpoint, cfg, target_ds)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".csv.tmp")
        per_image.to_csv(tmp, index=False)
        tmp.replace(cache)
        made_by.write_text(key)
    return target_metrics(per_image), per_image, result


def target_metrics(per_image: pd.DataFrame) -> dict[str, float]:
    """SRCC, PLCC and KRCC of ``predicted`` against ``score`` over the images that have a score,
    and their count ``n_scored``; the correlations are NaN when no image has one (an unlabelled
    target: predictions only)."""
    from dgqa_ray.metrics import krcc, plcc, srcc

    scored = per_image[per_image["score"].notna()]
    if len(scored) == 0:
        nan = float("nan")
        return {"srcc": nan, "plcc": nan, "krcc": nan, "n_scored": 0}
    y, p = scored["score"].to_numpy(), scored["predicted"].to_numpy()
    return {"srcc": srcc(p, y), "plcc": plcc(p, y), "krcc": krcc(p, y), "n_scored": len(scored)}
