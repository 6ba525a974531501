"""The trials of a search and how they run on Ray Tune.

A trial (``domain_set_trial``, in a Tune trial actor) is one domain set: it trains
``search.splits`` regressors on it and reports their median target SRCC/PLCC. ``run_trials``
runs one Tune experiment of such trials, restoring it when it exists; ``prepare`` makes the
stages every trial shares and the ``TrialContext`` sent to them; ``trial_concurrency`` and
``init_ray_for_search`` size the trials to the cluster.

Tune pickles the trial function, its context and the experiment's callback: they stay at
module level here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from dgqa_ray import storage
from dgqa_ray.config import PipelineConfig
from dgqa_ray.pipeline import (
    RoleData,
    dataset_key,
    domain_key,
    regressor_init_checkpoint,
    train_and_evaluate,
)
from dgqa_ray.search.results import METRIC, quiet_tracker

TUNE_DIR = "tune"
"""Tune experiments go to ``<storage>/tune/<name>``."""


log = logging.getLogger(__name__)


def say(text: str) -> None:
    """One line of the search's progress (the project's logger, ``console.py``)."""
    log.info(f"[search] {text}")


# --------------------------------------------------------------------------------------------
# What a trial needs, and the trial itself (runs in a Tune trial actor)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialContext:
    """Plain data every trial of one search shares (sent once with ``tune.with_parameters``)."""

    cfg: dict[str, Any]
    """The config (``to_dict``), local paths made absolute: Tune trials run in their own
    working directory."""
    name: str
    source: RoleData
    target: RoleData
    table_csv: str
    """The similarity table, as CSV text (selection happens in the trial)."""
    eval_dir: str
    init_checkpoint: str | None = None
    """The classifier checkpoint whose backbone starts every regressor
    (``model.regressor_init: classifier``), or None."""
    target_key: str = ""
    """The ingested target's version (``pipeline.dataset_key``): cached evaluations are
    reused only on it."""


def trial_types(point: Mapping[str, Any], table: pd.DataFrame, cfg: PipelineConfig) -> list[int]:
    """The domain set of a trial: given (GDS: ``types``) or selected by the point's rule."""
    from dgqa_ray.selection import select_domains

    if "types" in point:
        return sorted(int(t) for t in point["types"])
    sel = cfg.selection
    result = select_domains(
        table,
        rule=point["rule"],
        tau=point.get("tau"),
        k=sel.k,
        share=sel.share,
        vote_denominator=sel.vote_denominator,
        share_decimals=sel.share_decimals,
    )
    return [int(t) for t in result.selected]


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else float("nan")


def domain_set_trial(config: dict[str, Any], context: TrialContext) -> None:
    """One Tune trial: the point's domain set, ``search.splits`` regressors, their median target
    SRCC/PLCC reported to Tune. With ``search.early_stop`` the regressors grow one epoch at a
    time (each resumes from its checkpoint) and every epoch is reported, so ASHA can stop the
    trial; otherwise each trains all its epochs in one Ray Train run and one report follows."""
    import io

    from dgqa_ray.data.pipelines import read_dataset
    from dgqa_ray.selection import read_similarity_table

    cfg = PipelineConfig.from_dict(context.cfg)
    point = config["point"]
    table = read_similarity_table(io.StringIO(context.table_csv))
    types = trial_types(point, table, cfg)
    base = {"n_types": len(types), "domain_key": domain_key(types), "trial": point["key"]}
    if not types:
        # Nothing passes this threshold: there is no regressor to train.
        tune.report({**base, METRIC: float("nan"), "target_plcc": float("nan"), "epoch": 0})
        return
    target_ds = read_dataset(context.target.storage_uri, context.target.dataset)
    epochs = cfg.search.epochs or cfg.train.epochs
    steps = range(1, epochs + 1) if cfg.search.early_stop else [epochs]
    for step in steps:
        step_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=step))
        per_split = []
        for split in range(cfg.search.splits):
            name = f"{context.name}-{point['key']}-split{split}"
            metrics, _, _ = train_and_evaluate(
                step_cfg,
                context.source,
                target_ds,
                types,
                split,
                name,
                context.eval_dir,
                init_checkpoint=context.init_checkpoint,
                target_key=context.target_key,
            )
            per_split.append(metrics)
        report = {
            **base,
            "epoch": step,
            METRIC: _median([m["srcc"] for m in per_split]),
            "target_plcc": _median([m["plcc"] for m in per_split]),
            "target_krcc": _median([m["krcc"] for m in per_split]),
        }
        report.update({f"split{i}_srcc": m["srcc"] for i, m in enumerate(per_split)})
        tune.report(report)


# --------------------------------------------------------------------------------------------
# Running trials with Tune
# --------------------------------------------------------------------------------------------


def trial_concurrency(cfg: PipelineConfig, resources: Mapping[str, float] | None = None) -> int:
    """How many trials run at once: ``search.max_concurrent``, or as many as the cluster holds
    (each trial's Train workers reserve ``num_workers x cpus_per_worker`` CPUs, and a GPU each
    with ``use_gpu``; one CPU stays free for Ray Data's decoding)."""
    if cfg.search.max_concurrent:
        return cfg.search.max_concurrent
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    per_trial = cfg.train.num_workers * cfg.train.cpus_per_worker
    fits = int((float(resources.get("CPU", 0.0)) - 1.0) // per_trial)
    if cfg.train.use_gpu:
        fits = min(fits, int(float(resources.get("GPU", 0.0)) // cfg.train.num_workers))
    return max(1, fits)


def init_ray_for_search(cfg: PipelineConfig) -> PipelineConfig:
    """Connect to the cluster (``RAY_ADDRESS``) or start a local Ray with room for the trials
    that ``search.max_concurrent`` asks for (0: as many as the cores hold), plus a CPU for Ray
    Data, e.g. 3 logical CPUs on a 2-core machine with ``train.cpus_per_worker=1``; returns
    ``cfg`` with ``train.cpus_per_worker: 0`` read as 1 (trials run side by side), checked
    against the cluster."""
    from dgqa_ray.ray_session import init_ray
    from dgqa_ray.train import fit_to_cluster

    if cfg.train.cpus_per_worker == 0:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, cpus_per_worker=1))
    cores = os.cpu_count() or 1
    per_trial = cfg.train.num_workers * cfg.train.cpus_per_worker
    trials = cfg.search.max_concurrent or max(1, cores // per_trial)
    init_ray(num_cpus=max(cores, trials * per_trial) + 1)
    return fit_to_cluster(cfg)


def _experiment(cfg: PipelineConfig, name: str) -> tuple[str, Any, str]:
    """``(storage_path, storage_filesystem, experiment URI)`` of Tune experiment ``name``."""
    root = storage.join(storage.normalize(cfg.storage), TUNE_DIR)
    fs, path = storage.resolve(root)
    return path, (fs if storage.is_s3(root) else None), storage.join(root, name)


_ON_RESULT: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], None]] = {}
"""The driver's handler per running experiment. Tune pickles its callbacks with the experiment
(and unpickles them on restore), so the callback holds only the experiment's name."""


class TrialEnded(tune.Callback):
    """Hands each finished trial's last result to the driver's handler as it ends (a
    module-level class, pickled by reference, so a restored experiment finds the handler)."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment

    def on_trial_complete(self, iteration, trials, trial, **info):
        handler = _ON_RESULT.get(self.experiment)
        if handler is not None and trial.last_result:
            handler(trial.config["point"], trial.last_result)


def run_trials(
    cfg: PipelineConfig,
    context: TrialContext,
    experiment: str,
    points: Sequence[Mapping[str, Any]],
    on_result: Callable[[Mapping[str, Any], Mapping[str, Any]], None],
) -> list[tuple[Mapping[str, Any], dict[str, Any] | None, str]]:
    """Run one Tune experiment: a trial per point (``{"key": ..., ...}``), resumed when the
    experiment already exists. ``on_result(point, metrics)`` is called in the driver as each
    trial ends (and for trials that had ended before a restart). Returns ``(point, final
    metrics or None, status)`` per point, in the points' order."""
    from ray.tune.schedulers import ASHAScheduler

    storage_path, fs, uri = _experiment(cfg, experiment)
    _, exp_path = storage.resolve(uri)
    # The trial itself only waits on its trainers: it reserves no CPU (Tune needs some
    # resource in a bundle, so a token of memory), the trainers' workers reserve theirs.
    trainable = tune.with_resources(
        tune.with_parameters(domain_set_trial, context=context), {"CPU": 0, "memory": 2**20}
    )
    concurrency = trial_concurrency(cfg)
    param_space = {"point": tune.grid_search([dict(p) for p in points])}

    if tune.Tuner.can_restore(exp_path, storage_filesystem=fs):
        say(f"{experiment}: resuming the Tune experiment at {uri}")
        tuner = tune.Tuner.restore(
            exp_path,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=param_space,
            storage_filesystem=fs,
        )
    else:
        scheduler = None
        if cfg.search.early_stop:
            scheduler = ASHAScheduler(
                time_attr="epoch",
                max_t=cfg.search.epochs or cfg.train.epochs,
                grace_period=1,
                reduction_factor=2,
            )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                max_concurrent_trials=concurrency,
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=storage_path,
                storage_filesystem=fs,
                callbacks=[TrialEnded(experiment)],
                verbose=1,
            ),
        )
    say(
        f"{experiment}: {len(points)} trial(s), up to {concurrency} at once "
        f"({cfg.train.num_workers} worker(s) x {cfg.train.cpus_per_worker} CPU each)",
    )
    _ON_RESULT[experiment] = on_result
    try:
        grid = tuner.fit()
    finally:
        _ON_RESULT.pop(experiment, None)
    by_key: dict[str, tuple[dict[str, Any] | None, str]] = {}
    for result in grid:
        point = (result.config or {}).get("point", {})
        metrics = dict(result.metrics) if result.metrics else None
        status = "error" if result.error else ("done" if metrics else "no result")
        if result.error:
            say(f"{experiment}: trial {point.get('key')} failed: {result.error}")
        elif metrics:
            on_result(point, metrics)  # trials that ended before a restart, or missed callbacks
        by_key[point.get("key")] = (metrics, status)
    return [(p, *by_key.get(p["key"], (None, "missing"))) for p in points]


# --------------------------------------------------------------------------------------------
# What every search does first (in the driver)
# --------------------------------------------------------------------------------------------


def absolute(cfg: PipelineConfig) -> PipelineConfig:
    """Local paths absolute, so that Tune trials (own working directory) find them."""
    out = os.path.abspath(cfg.output_dir)
    store = cfg.storage if storage.is_s3(cfg.storage) else storage.normalize(cfg.storage)
    return dataclasses.replace(cfg, output_dir=out, storage=store)


def prepare(cfg: PipelineConfig, name: str) -> tuple[Any, TrialContext, Path]:
    """The stages up to the selection (``pipeline.prepare_stages``: each reused when
    finished), the search's output folder and the context its trials share."""
    from dgqa_ray.pipeline import prepare_stages

    prepared = prepare_stages(cfg, quiet_tracker(cfg))
    out_dir = prepared.run_dir / "search" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    context = TrialContext(
        cfg=cfg.to_dict(),
        name=name,
        source=prepared.source,
        target=prepared.target,
        table_csv=prepared.outcome.table.to_csv(index=False),
        eval_dir=str(out_dir / "evaluation"),
        init_checkpoint=regressor_init_checkpoint(cfg, prepared.classifier),
        target_key=dataset_key(prepared.target),
    )
    return prepared, context, out_dir
