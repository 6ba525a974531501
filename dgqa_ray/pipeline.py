"""The end-to-end DGQA flow behind ``jobs/full_pipeline.py``.

    data       synthesize the embedded default, or take raw datasets; ingest each into shards
    classifier train F_D on the classifier dataset (Ray Train), checkpoint per epoch
    selection  F_D over the target (Ray Data batch inference, 5 crops averaged), similarity per
               type, the configured rule (the other rule is computed and logged too)
    regressors per source split (the paper's 5 reference-grouped 80/20 splits): one regressor
               on all 25 types (baseline) and one on the selected types (DGQA)
    evaluation each regressor on the target (5 crops averaged): SRCC, PLCC, KRCC
    report     median over splits, ours next to the paper's where the target matches

Every stage is reused on a rerun (ingested datasets by fingerprint, training runs by name and
checkpoint, the similarity table and per-run evaluations from files) unless ``cfg.redo`` names
it. One MLflow parent run per pipeline run, nested runs per stage (``tracking.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig, save_config

EMBEDDED = "embedded"
ROLES = ("classifier", "source", "target")


@dataclass
class RoleData:
    """Where one role's dataset comes from and where it is ingested."""

    role: str
    adapter: str
    root: str
    options: dict[str, Any]
    storage_uri: str  # the ingested dataset lives at <storage_uri>/<dataset>
    dataset: str = ""  # the ingested dataset's name (the adapter's name)


@dataclass
class PipelineResult:
    run_dir: str
    selected: list[int]
    rule: str
    results: pd.DataFrame
    per_split: pd.DataFrame
    report_path: str
    mlflow_ui: str
    target_types: list[int] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    classifier_metrics: dict[str, Any] = field(default_factory=dict)
    summary_path: str = ""
    predictions_path: str = ""  # target_predictions.csv: every target image's predicted scores
    labelled: bool = True  # whether the target has scores (SRCC/PLCC measured)
    dgqa_model: dict[str, str | None] = field(default_factory=dict)  # checkpoint, mlflow URI
    mlflow_url: str = ""  # the experiment's runs view in the MLflow UI


def _say(log: Callable[[str], None], text: str) -> None:
    log(f"[pipeline] {text}")


# -- data ------------------------------------------------------------------------------------


def resolve_data(cfg: PipelineConfig, run_dir: Path, log: Callable[[str], None]):
    """Each role's adapter and root; the embedded default is synthesized first (reused)."""
    roles: dict[str, RoleData] = {}
    target_types = None
    embedded = [r for r in ROLES if getattr(cfg.data, f"{r}_dataset") == EMBEDDED]
    if embedded:
        from dgqa_ray.demo.pools import build_embedded_pools

        pools = build_embedded_pools(
            cfg, Path(cfg.output_dir) / "embedded", force=cfg.redo_stage("data"), log=log
        )
        target_types = list(pools.target_types)
        for role in embedded:
            pool = getattr(pools, role)
            roles[role] = RoleData(
                role,
                pool.adapter,
                pool.root,
                dict(pool.options),
                storage.join(cfg.storage, "embedded", role),
            )
    for role in ROLES:
        if role not in roles:
            name, root, options = _raw_role(cfg, role)
            roles[role] = RoleData(role, name, root, options, cfg.storage)
    return roles, target_types


def _raw_role(cfg: PipelineConfig, role: str) -> tuple[str, str, dict[str, Any]]:
    """A configured (not embedded) role's adapter name, root and adapter options."""
    name = getattr(cfg.data, f"{role}_dataset")
    root = cfg.data.root_for(role, cfg.storage)
    options: dict[str, Any] = dict(getattr(cfg.data, f"{role}_options"))
    if role == "target" and cfg.data.target_subset and name == "pipal":
        options["subtypes"] = [cfg.data.target_subset]
    return name, root, options


def _read_index(cfg: PipelineConfig, role: str) -> pd.DataFrame:
    """A configured role's index, read as its adapter reads it (``DatasetError`` naming the
    role, the root and what was expected there)."""
    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.errors import DatasetError

    name, root, options = _raw_role(cfg, role)
    try:
        return open_adapter(name, root, **options).index()
    except DatasetError as e:
        raise DatasetError(f"data.{role}_root ({name} at {root}): {e}") from None
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"data.{role}_root ({name} at {root}): cannot be read as a {name} dataset: {e}"
        ) from None


def check_data_roots(cfg: PipelineConfig, *, scores_needed_by: str = "") -> bool:
    """Every role's raw dataset checked before anything starts: its root must hold the layout
    its adapter expects and its index must parse (``DatasetError`` naming the role, the root
    and what was expected there). Seconds, instead of minutes of ingesting the other roles
    first; the embedded default is built by the pipeline and needs no check.

    Returns whether the target has scores (``target_has_scores``). ``scores_needed_by`` names
    a job that cannot run without them (a search ranking by target SRCC): an unlabelled target
    is then refused here, before any compute."""
    labelled = True
    for role in ROLES:
        if getattr(cfg.data, f"{role}_dataset") == EMBEDDED:
            continue
        index = _read_index(cfg, role)
        if role == "target":
            labelled = bool(index["score"].notna().any())
    if scores_needed_by and not labelled:
        from dgqa_ray.data.errors import DatasetError

        raise DatasetError(
            _unlabelled_target(cfg) + f": {scores_needed_by} ranks by target "
            "SRCC and needs them (jobs/full_pipeline.py runs without)"
        )
    return labelled


def target_has_scores(cfg: PipelineConfig) -> bool:
    """Whether the target's index holds scores, so that SRCC/PLCC can be measured on it: the
    embedded default's proxies do; a ``custom`` table without
    ``data.target_options.score_column`` does not. Reads the target's index only."""
    if cfg.data.target_dataset == EMBEDDED:
        return True
    return bool(_read_index(cfg, "target")["score"].notna().any())


def _unlabelled_target(cfg: PipelineConfig) -> str:
    name, root, _ = _raw_role(cfg, "target")
    hint = " (set data.target_options.score_column)" if name == "custom" else ""
    return f"data.target_root ({name} at {root}): the target has no scores{hint}"


def ingest_all(cfg: PipelineConfig, roles: dict[str, RoleData], log) -> None:
    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.ingest import ingest

    for role in ROLES:
        data = roles[role]
        adapter = open_adapter(data.adapter, data.root, **data.options)
        result = ingest(
            adapter,
            data.storage_uri,
            shard_size_mb=cfg.data.shard_mb,
            max_bad_fraction=cfg.data.max_bad_fraction,
            max_megapixels=cfg.data.max_image_megapixels,
            force=cfg.redo_stage("data"),
            log=log,
        )
        data.dataset = result.dataset  # ingest's own last line said where, and how many


def dataset_key(data: RoleData) -> str:
    """Names the exact ingested version of a role's dataset (``<storage>/<dataset>@<version>``):
    cached results computed on a dataset are reused only for this same version."""
    from dgqa_ray.data import shards

    manifest = shards.read_manifest(shards.dataset_uri(data.storage_uri, data.dataset))
    return f"{storage.join(data.storage_uri, data.dataset)}@{manifest.version}"


# -- MLflow: models and dataset inputs ---------------------------------------------------------

MODEL_EXAMPLE_BATCH = 2
"""Images in a logged model's input example (the batch dimension stays free: 2, not 1, so that
``torch.export`` does not fix it)."""


def log_trained_model(
    run, cfg: PipelineConfig, checkpoint: str, task: str, registered_name: str | None = None
) -> str | None:
    """The checkpoint's network, behind its preprocessing (``inference.preprocessed_model``),
    as ``run``'s MLflow model, with what a user needs to run it in its metadata. Returns its
    ``runs:/`` URI; None when ``tracking.log_models`` is off or tracking is inactive."""
    if not (cfg.tracking.log_models and run.active):
        return None
    import numpy as np

    from dgqa_ray.inference import build_model, load_model_state, preprocessed_model

    state = load_model_state(checkpoint)
    module = preprocessed_model(build_model(cfg.model, state, repr(checkpoint), task))
    crop = cfg.data.crop_size
    example = np.random.default_rng(0).integers(
        0, 256, (MODEL_EXAMPLE_BATCH, 3, crop, crop), dtype=np.uint8
    )
    output = (
        "quality on the [0, 10] training scale, higher is better: average it over the crops of "
        "an image"
        if task == "regressor"
        else "logits over KADID distortion types 1..25 (0 = pristine with 26 classes)"
    )
    metadata = {
        "task": task,
        "backbone": cfg.model.backbone,
        "num_outputs": 1 if task == "regressor" else cfg.model.num_classes,
        "crop_size": crop,
        "eval_crops": cfg.data.eval_crops,
        "input": f"uint8 RGB crops (B, 3, {crop}, {crop}), 0-255; the model scales them to "
        "[0, 1] and ImageNet-normalises them",
        "output": output,
        "checkpoint": checkpoint,
    }
    return run.log_model(
        module, example=example, metadata=metadata, registered_name=registered_name
    )


def log_dataset_inputs(run, inputs: Sequence[tuple[RoleData, str]]) -> None:
    """Each ``(role data, context)`` as one of ``run``'s MLflow dataset inputs: the ingested
    version's name, fingerprint (the digest), location and size."""
    if not run.active:
        return
    from dgqa_ray.data import shards

    for data, context in inputs:
        uri = shards.dataset_uri(data.storage_uri, data.dataset)
        manifest = shards.read_manifest(uri)
        run.log_dataset(
            name=data.dataset,
            fingerprint=manifest.source_fingerprint,
            uri=uri,
            rows=manifest.row_count,
            context=context,
            version=manifest.version,
        )


# -- evaluation on the target -----------------------------------------------------------------


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
    log: Callable[[str], None] = print,
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
        _say(log, f"selection: reusing the similarity table {table_path}")
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


# -- stages shared by the pipeline and the searches -------------------------------------------


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


def _start_over(cfg: PipelineConfig, stage: str, run_name: str, log) -> None:
    """``--redo <stage>``: a training starts from epoch 0 (its old checkpoints are removed)."""
    from dgqa_ray.train import run_dir_uri

    if cfg.redo_stage(stage):
        folder = run_dir_uri(cfg.storage, run_name)
        if storage.exists(folder):
            _say(log, f"redo {stage}: removing the checkpoints of {run_name} at {folder}")
            storage.delete_tree(folder)


def train_classifier_stage(cfg: PipelineConfig, roles: dict[str, RoleData], tracker, log):
    """F_D on the classifier dataset (split 0's training part; its held-out part validates)."""
    from dgqa_ray.train import fit_classifier, split_datasets

    data = roles["classifier"]
    name = cfg.classifier_run_name
    _start_over(cfg, "classifier", name, log)
    with tracker.nested("classifier") as run:
        datasets = split_datasets(cfg, data.storage_uri, data.dataset, 0)
        result = fit_classifier(cfg, datasets, run_name=name)
        for epoch, entry in enumerate(result.history):
            run.log_metrics(entry, step=epoch)
        run.log_params({"checkpoint": result.best_checkpoint, "dataset": data.dataset})
        log_dataset_inputs(run, [(data, "training")])
        log_trained_model(run, cfg, result.best_checkpoint, "classifier")
    _say(log, result.summary())
    return result


def selection_stage(
    cfg, classifier, target_ds, run_dir: Path, tracker, log, target_key: str = ""
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
            log=log,
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
    _say(
        log,
        f"selection ({selection.rule}): {len(selected)} type(s): "
        + ", ".join(f"#{t} {names.get(t, t)}" for t in selected),
    )
    _say(log, f"  ({other.rule} would select: {', '.join(map(str, other.selected))})")
    return outcome


def prepare_stages(
    cfg: PipelineConfig, tracker, log: Callable[[str], None] = print, timings=None
) -> PreparedRun:
    """Data, classifier and selection (each reused when finished): the common start of the
    pipeline and of the searches (``dgqa_ray.search``)."""
    from dgqa_ray.data.pipelines import read_dataset
    from dgqa_ray.train import fit_to_cluster

    cfg = fit_to_cluster(cfg, log=lambda _: None)
    timings = {} if timings is None else timings
    run_dir = Path(cfg.output_dir) / "runs" / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        save_config(cfg, str(run_dir / "config.yaml"))

    t0 = time.monotonic()
    roles, target_types = resolve_data(cfg, run_dir, log)
    ingest_all(cfg, roles, log)
    timings["data"] = time.monotonic() - t0

    t0 = time.monotonic()
    classifier = train_classifier_stage(cfg, roles, tracker, log)
    timings["classifier"] = time.monotonic() - t0

    t0 = time.monotonic()
    target_ds = read_dataset(roles["target"].storage_uri, roles["target"].dataset)
    outcome = selection_stage(
        cfg, classifier, target_ds, run_dir, tracker, log, target_key=dataset_key(roles["target"])
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


# -- the flow ----------------------------------------------------------------------------------


def run_pipeline(
    cfg: PipelineConfig, log: Callable[[str], None] = print, *, check_roots: bool = True
) -> PipelineResult:
    """Run (or resume) the whole pipeline; see the module docstring. ``check_roots``: check
    every role's raw dataset first (``check_data_roots``; False when the caller just did)."""
    from dgqa_ray import reports
    from dgqa_ray.selection import distortion_names
    from dgqa_ray.tracking import Tracker, mlflow_ui_command
    from dgqa_ray.train import init_ray_for_training

    started = time.monotonic()
    timings: dict[str, float] = {}
    # Before Ray starts: a wrong root costs seconds, and whether SRCC/PLCC can be measured
    # is known before any compute.
    labelled = check_data_roots(cfg) if check_roots else target_has_scores(cfg)
    if not labelled:
        _say(
            log,
            "target: no scores (unlabelled): data, classifier, selection and regressors run, "
            f"SRCC/PLCC are not measured; predicted scores go to {PREDICTIONS_FILE}",
        )
    cfg = init_ray_for_training(cfg, log=lambda text: _say(log, text))  # checks fit, first
    run_dir = Path(cfg.output_dir) / "runs" / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = save_config(cfg, str(run_dir / "config.yaml"))
    _say(log, f"run {cfg.run_name!r}: results in {run_dir.resolve()}; config {config_path}")
    from dgqa_ray.ray_session import where_logs_are

    if logs_line := where_logs_are():
        _say(log, logs_line)
    names = distortion_names()

    with Tracker(cfg) as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"stage": "running"})

        # 1-3. data, classifier, selection
        prepared = prepare_stages(cfg, tracker, log, timings)
        log_dataset_inputs(
            tracker.parent,
            [
                (prepared.roles["classifier"], "training"),
                (prepared.source, "training"),
                (prepared.target, "evaluation"),
            ],
        )
        selection, other = prepared.outcome.selection, prepared.outcome.other
        selected = [int(t) for t in selection.selected]
        target_types = prepared.target_types
        if not selected:
            raise RuntimeError(
                "selection: no source type passed the rule; lower selection.tau or use "
                "selection.rule=topk_vote"
            )
        target_ds = prepared.target_ds

        # 4. regressors and evaluation
        t0 = time.monotonic()
        rows, histories, predictions = [], [], {}
        models: dict[str, str | None] = {}  # the DGQA regressor of split 0, for scoring
        eval_dir = run_dir / "evaluation"
        variants = regressor_variants(cfg, selected, target_types)
        init = regressor_init_checkpoint(cfg, prepared.classifier)
        target_key = dataset_key(prepared.target)
        for split in range(cfg.eval.n_splits):
            for variant, dist_types in variants.items():
                name = regressor_run_name(cfg.run_name, variant, dist_types, split)
                _start_over(cfg, "regressors", name, log)
                with tracker.nested(name) as run:
                    metrics, per_image, result = train_and_evaluate(
                        cfg,
                        prepared.source,
                        target_ds,
                        dist_types,
                        split,
                        name,
                        eval_dir,
                        init_checkpoint=init,
                        target_key=target_key,
                    )
                    for epoch, entry in enumerate(result.history):
                        run.log_metrics(entry, step=epoch)
                    run.log_params(
                        {
                            "variant": variant,
                            "split": split,
                            "dist_types": "all"
                            if dist_types is None
                            else ",".join(map(str, dist_types)),
                            "checkpoint": result.best_checkpoint,
                        }
                    )
                    run.log_metrics(
                        {f"target_{k}": v for k, v in metrics.items() if v == v}  # not NaN
                    )
                    run.log_artifact(str(eval_dir / f"{name}.csv"))
                    log_dataset_inputs(
                        run, [(prepared.source, "training"), (prepared.target, "evaluation")]
                    )
                    first_dgqa = variant == "dgqa" and split == 0
                    model_uri = log_trained_model(
                        run,
                        cfg,
                        result.best_checkpoint,
                        "regressor",
                        registered_name=cfg.tracking.registered_model if first_dgqa else None,
                    )
                    if first_dgqa:
                        models = {"checkpoint": result.best_checkpoint, "mlflow": model_uri}
                predictions[variant, split] = per_image
                rows.append(
                    {
                        "variant": variant,
                        "split": split,
                        "n_types": 25 if dist_types is None else len(dist_types),
                        **metrics,
                    }
                )
                histories.append(_epoch_choice(variant, split, result))
                _say(log, f"split {split} {variant:<8}: " + _scored_line(metrics, per_image))
        timings["regressors"] = time.monotonic() - t0
        predictions_path = write_target_predictions(
            run_dir, predictions, _image_paths(prepared.target)
        )

        # 5. report
        per_split = pd.DataFrame(rows)
        target_key = reports.target_key(cfg.data.target_dataset, cfg.data.target_subset)
        paper = reports.paper_numbers_from_dir(reports.reference_dir(), target_key)
        results = reports.results_table(per_split, paper=paper)
        per_split.to_csv(run_dir / "per_split.csv", index=False)
        epochs = pd.DataFrame(histories)
        epochs.to_csv(run_dir / "regressor_epochs.csv", index=False)
        written = reports.write_results(results, str(run_dir), title=f"DGQA run {cfg.run_name}")
        figures = []
        if labelled:
            figure = reports.plot_predictions(
                predictions["dgqa", 0], title="Target, DGQA split 0: predicted vs true"
            )
            scatter = run_dir / "target_scatter_dgqa_split0.png"
            figure.savefig(scatter, dpi=100)
            figures.append(str(scatter))
        report_path = _write_report(
            cfg,
            run_dir,
            results,
            selected,
            selection.rule,
            other.rule,
            other.selected,
            target_types,
            names,
            timings,
            prepared.classifier,
            epochs,
            labelled=labelled,
            predictions_path=predictions_path,
        )
        gain = reports.dgqa_gain(results)
        medians = {
            f"target_{metric}_{variant}": _median(per_split, variant, metric)
            for variant in variants
            for metric in ("srcc", "plcc")
        }
        tracker.log_metrics(
            {
                **{k: v for k, v in medians.items() if v == v},  # none on an unlabelled target
                **({"dgqa_gain_srcc": gain["srcc"]} if gain["srcc"] == gain["srcc"] else {}),
                "n_selected": len(selected),
            }
        )
        tracker.log_params({"selected_types": ",".join(map(str, selected)), "rule": selection.rule})
        timings["total"] = time.monotonic() - started
        summary_path = write_summary(
            run_dir,
            cfg,
            prepared.classifier,
            selected,
            selection.rule,
            target_types,
            per_split,
            timings["total"],
            labelled=labelled,
            dgqa_model=models,
        )
        for path in (*written.values(), *figures, report_path, config_path, summary_path):
            tracker.log_artifact(path)
        tracker.log_artifact(predictions_path)
        tracker.set_tags({"stage": "done"})
        # Point at the UI only for a store that took the runs.
        ui = mlflow_ui_command(cfg) if tracker.active else ""
        ui_url = tracker.experiment_url() or ""
        if not ui and cfg.tracking.enabled:
            ui = f"(not recorded: {tracker.failure or 'tracking off'})"

    return PipelineResult(
        run_dir=str(run_dir),
        selected=selected,
        rule=selection.rule,
        results=results,
        per_split=per_split,
        report_path=report_path,
        mlflow_ui=ui,
        mlflow_url=ui_url,
        target_types=target_types,
        timings=timings,
        classifier_metrics=_classifier_figures(prepared.classifier),
        summary_path=summary_path,
        predictions_path=predictions_path,
        labelled=labelled,
        dgqa_model=models,
    )


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


def _epoch_choice(variant: str, split: int, result) -> dict[str, Any]:
    """Which epoch a regressor's best checkpoint is (chosen on the *source* validation split)
    next to its last epoch."""
    best, last = result.best_metrics, result.final_metrics
    return {
        "variant": variant,
        "split": split,
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "best_val_srcc": best.get("val_srcc"),
        "last_epoch": int(last.get("epoch", -1)) + 1,
        "last_val_srcc": last.get("val_srcc"),
    }


def _classifier_figures(classifier) -> dict[str, Any]:
    """The classifier's held-out figures at its best epoch (chosen on its own validation
    references) and at its last."""
    best, last = classifier.best_metrics, classifier.final_metrics
    out = {
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "last_epoch": int(last.get("epoch", -1)) + 1,
    }
    for key in ("val_accuracy", "val_top3_accuracy", "val_loss", "val_images"):
        if key in best:
            out[f"best_{key}"] = best[key]
        if key in last:
            out[f"last_{key}"] = last[key]
    out["best_val_accuracy_per_level"] = [best.get(f"val_accuracy_level{v}") for v in range(1, 6)]
    return out


SUMMARY_FILE = "summary.json"
PREDICTIONS_FILE = "target_predictions.csv"


def _scored_line(metrics: dict[str, float], per_image: pd.DataFrame) -> str:
    """One regressor's console line: its target SRCC/PLCC, or what it scored when the target
    has no scores (or only some)."""
    n, scored = len(per_image), int(metrics["n_scored"])
    if scored == 0:
        return f"predicted {n} target images (no target scores: SRCC/PLCC not measured)"
    part = "" if scored == n else f" (over the {scored} of {n} images that have a score)"
    return f"target SRCC {metrics['srcc']:.4f} PLCC {metrics['plcc']:.4f}{part}"


def _image_paths(data: RoleData) -> pd.DataFrame:
    """``image_id, path`` of a role's images, in its index's order (where each file was read)."""
    from dgqa_ray.data.adapters import open_adapter

    index = open_adapter(data.adapter, data.root, **data.options).index()
    return index[["image_id", "path"]].astype({"image_id": str})


def write_target_predictions(
    run_dir: Path, predictions: dict[tuple[str, int], pd.DataFrame], paths: pd.DataFrame
) -> str:
    """``<run_dir>/target_predictions.csv`` (written atomically): one row per target image that
    was ingested, in the target index's order: ``image_id``, ``path``, then one column per
    regressor variant (``dgqa``, ``baseline``, ...: the predicted quality on the [0, 10] score
    scale, higher is better, averaged over the variant's split regressors) and ``score`` (the
    target's own normalised score) where the target has scores.

    ``predictions``: ``(variant, split) -> train_and_evaluate``'s per-image table."""
    columns: dict[str, list[pd.Series]] = {}
    for (variant, _), per_image in predictions.items():
        table = per_image.astype({"image_id": str}).set_index("image_id")
        columns.setdefault(variant, []).append(table["predicted"])
    out = pd.DataFrame({v: pd.concat(parts, axis=1).mean(axis=1) for v, parts in columns.items()})
    first = next(iter(predictions.values())).astype({"image_id": str}).set_index("image_id")
    if first["score"].notna().any():
        out["score"] = first["score"]
    out = paths.merge(out, left_on="image_id", right_index=True, how="inner")
    path = Path(run_dir) / PREDICTIONS_FILE
    tmp = path.with_suffix(".csv.tmp")
    out.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(path)
    return str(path)


def write_summary(
    run_dir: Path,
    cfg: PipelineConfig,
    classifier,
    selected: Sequence[int],
    rule: str,
    target_types: Sequence[int] | None,
    per_split: pd.DataFrame,
    wall_seconds: float,
    *,
    labelled: bool = True,
    dgqa_model: dict[str, str | None] | None = None,
) -> str:
    """``<run_dir>/summary.json``: the machine-readable result of a run (written atomically).

    Keys: ``classifier_val_accuracy`` / ``classifier_val_top3_accuracy`` (held-out top-1/top-3
    at the checkpoint used, chosen on the classifier's validation references), ``selected``
    (type ids of the configured ``rule``), ``target_types`` (the true types, embedded target
    only, else null), ``selection_precision`` / ``selection_recall`` (null without true
    types), ``baseline_srcc`` / ``dgqa_srcc`` / ``oracle_srcc`` and the PLCCs (medians over
    splits; null where not computed, and all null on an unlabelled target), ``n_splits``,
    ``wall_seconds``, ``target_labelled`` (whether the target had scores) and
    ``target_predictions`` (the file, in the run folder, with every target image's scores)
    and ``dgqa_model`` (the DGQA regressor of split 0: its ``checkpoint`` and its ``mlflow``
    model URI, null when not logged), what ``jobs/score.py --model`` takes.
    """
    import json
    import math

    from dgqa_ray import reports

    def median(variant: str, metric: str) -> float | None:
        part = per_split.loc[per_split["variant"] == variant, metric]
        value = float(part.median()) if len(part) else float("nan")
        return None if math.isnan(value) else round(value, 4)

    figures = _classifier_figures(classifier)
    quality = reports.selection_quality(selected, target_types) if target_types else None
    summary = {
        "run_name": cfg.run_name,
        "classifier_val_accuracy": figures.get("best_val_accuracy"),
        "classifier_val_top3_accuracy": figures.get("best_val_top3_accuracy"),
        "classifier_best_epoch": figures["best_epoch"],
        "classifier_epochs": figures["last_epoch"],
        "rule": rule,
        "selected": [int(t) for t in selected],
        "target_types": [int(t) for t in target_types] if target_types else None,
        "selection_precision": None if quality is None else round(quality["precision"], 4),
        "selection_recall": None if quality is None else round(quality["recall"], 4),
        "baseline_srcc": median("baseline", "srcc"),
        "dgqa_srcc": median("dgqa", "srcc"),
        "oracle_srcc": median("oracle", "srcc"),
        "baseline_plcc": median("baseline", "plcc"),
        "dgqa_plcc": median("dgqa", "plcc"),
        "oracle_plcc": median("oracle", "plcc"),
        "n_splits": int(per_split["split"].nunique()),
        "wall_seconds": round(float(wall_seconds), 1),
        "target_labelled": bool(labelled),
        "target_predictions": PREDICTIONS_FILE,
        "dgqa_model": dict(dgqa_model or {}),
    }
    path = run_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
    return str(path)


def _median(per_split: pd.DataFrame, variant: str, metric: str) -> float:
    return float(per_split.loc[per_split["variant"] == variant, metric].median())


def _write_report(
    cfg,
    run_dir,
    results,
    selected,
    rule,
    other_rule,
    other_selected,
    target_types,
    names,
    timings,
    classifier,
    epochs: pd.DataFrame,
    *,
    labelled: bool = True,
    predictions_path: str = "",
) -> str:
    from dgqa_ray import reports

    lines = [f"# DGQA pipeline run `{cfg.run_name}`", ""]
    lines += [
        f"Classifier data: `{cfg.data.classifier_dataset}` ({cfg.data.classifier_view}), source: "
        f"`{cfg.data.source_dataset}`, target: `{cfg.data.target_dataset}`; backbone "
        f"{cfg.model.backbone} at {cfg.data.crop_size}px; regressors start from "
        f"`{cfg.model.regressor_init}` and train `{cfg.train.regressor_trainable}`; "
        f"{cfg.eval.n_splits} source split(s).",
        "",
    ]
    if EMBEDDED in (cfg.data.source_dataset, cfg.data.target_dataset):
        lines += [
            "Scores of the embedded default are **full-reference proxies** computed against the "
            "pristine tiles, not subjective ratings.",
            "",
        ]
    figures = _classifier_figures(classifier)
    lines += ["## Domain classifier (held-out references)", ""]
    lines += [
        "| epoch | used | top-1 | top-3 | loss |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for entry in classifier.history:
        epoch = int(entry["epoch"]) + 1
        lines.append(
            f"| {epoch} | {'yes' if epoch == figures['best_epoch'] else ''} | "
            f"{entry.get('val_accuracy', float('nan')):.3f} | "
            f"{entry.get('val_top3_accuracy', float('nan')):.3f} | "
            f"{entry.get('val_loss', float('nan')):.3f} |"
        )
    per_level = figures["best_val_accuracy_per_level"]
    if any(v is not None for v in per_level):
        lines += [
            "",
            "Top-1 by level at the epoch used (level 1 is the mildest; several types are "
            "identities or nearly so there): "
            + ", ".join(f"L{i + 1} {v:.3f}" for i, v in enumerate(per_level) if v is not None)
            + ".",
        ]
    lines += ["", f"## Selected source types (rule `{rule}`)", ""]
    lines.append(
        reports.selection_markdown(
            selected, names, reference=target_types, reference_label="the target's mixture types"
        )
        if target_types
        else reports.selection_markdown(selected, names)
    )
    if target_types:
        quality = reports.selection_quality(selected, target_types)
        lines += [
            "",
            f"Precision {quality['precision']:.2f} (selected types that the target has), "
            f"recall {quality['recall']:.2f} (target types selected).",
        ]
    lines += ["", f"The other rule, `{other_rule}`, would select: {list(other_selected)}.", ""]
    if labelled:
        lines += ["## Target SRCC/PLCC (median over splits)", ""]
        lines += [reports.markdown_table(results), ""]
    else:
        lines += [
            "## Target scores",
            "",
            "The target has no scores, so SRCC/PLCC were not measured. Every target image's "
            f"predicted quality (0-10, higher is better) is in `{Path(predictions_path).name}`.",
            "",
        ]
    if "oracle" in set(results.get("variant", [])):
        lines += [
            "`oracle` trains on exactly the target's true types: the best any selection could "
            "pick (it uses knowledge no real target gives).",
            "",
        ]
    if not epochs.empty:
        lines += [
            "Regressor checkpoints are chosen on the source validation split, never on the target:",
            "",
            reports.markdown_table(epochs),
            "",
        ]
    lines += [
        reports.selections_across_targets(
            cfg.output_dir, reports.reference_dir(), truth=target_types
        ),
        "",
    ]
    lines += ["## Timings", ""]
    lines += [f"- {stage}: {seconds:.0f} s" for stage, seconds in timings.items()]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def pipeline_summary(result: PipelineResult) -> str:
    """What ``jobs/full_pipeline.py`` prints at the end."""
    from dgqa_ray import reports

    figures = result.classifier_metrics
    lines = [""]
    if figures.get("best_val_accuracy") is not None:
        lines.append(
            f"Classifier, held-out references: top-1 {figures['best_val_accuracy']:.3f}, "
            f"top-3 {figures.get('best_val_top3_accuracy', float('nan')):.3f} (epoch "
            f"{figures['best_epoch']} of {figures['last_epoch']}; 25 classes, chance 0.04)"
        )
    lines.append(f"Selected types ({result.rule}): {result.selected}")
    if result.target_types:
        quality = reports.selection_quality(result.selected, result.target_types)
        lines.append(
            f"Target mixture types: {result.target_types}; recovered "
            f"{len(quality['recovered'])}/{len(result.target_types)} {quality['recovered']}, "
            f"also picked {quality['extra']} (precision {quality['precision']:.2f}, recall "
            f"{quality['recall']:.2f})"
        )
    if result.labelled:
        lines += ["", reports.markdown_table(result.results), ""]
    else:
        lines += ["", "The target has no scores: SRCC/PLCC not measured.", ""]
    lines.append(f"Target predictions: {result.predictions_path}")
    lines.append(f"Report: {result.report_path}")
    lines.append(f"Summary: {result.summary_path}")
    lines.append(f"Results and checkpoints: {result.run_dir}")
    model = result.dgqa_model.get("mlflow") or result.dgqa_model.get("checkpoint")
    if model:
        lines.append(
            f"Score new images: python jobs/score.py --model {model} --images <folder> "
            "--out scores.csv"
        )
    if result.mlflow_ui.startswith("mlflow "):
        lines.append(f"MLflow UI: {result.mlflow_ui}")
        if result.mlflow_url:
            lines.append(f"  then open {result.mlflow_url} (the runs view)")
    elif result.mlflow_url:
        lines.append(f"MLflow: {result.mlflow_url}")
    else:
        lines.append(f"MLflow: {result.mlflow_ui or 'tracking off'}")
    return "\n".join(lines)
