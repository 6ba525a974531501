"""Ray Tune searches around the selection: a tau sweep and greedy domain selection (GDS).

    from dgqa_ray.config import load_config
    from dgqa_ray.tune import run_gds_search, run_tau_sweep

    sweep = run_tau_sweep(load_config("demo", ["search.taus=[0.03,0.04,0.05]"]))
    sweep.best, sweep.table                  # the best (rule, tau) and every trial's SRCC/PLCC
    search = run_gds_search(load_config("demo", ["search.gds_max_rounds=3"]))
    search.rounds                            # the type added per round and the SRCC it reached

Both start like the pipeline (``pipeline.prepare_stages``: data, classifier and similarity
table, each reused when finished; no classifier re-run), then hand trials to Ray Tune. A trial
is one domain set: it trains ``search.splits`` regressors on it (each its own Ray Train run,
with the config's ``ScalingConfig``) and reports the median target SRCC/PLCC over them. Tune
drives a function that builds the trainers (Ray Train V2), so its concurrency is set from what
a trial reserves: ``train.num_workers x train.cpus_per_worker`` CPUs (GPUs with
``train.use_gpu``), one CPU left for Ray Data (``trial_concurrency``).

Resuming. The Tune experiment lives under ``<storage>/tune/<name>`` (local or S3): a rerun with
the same name restores it, keeps finished trials and resumes unfinished ones, whose regressors
resume from their own per-epoch checkpoints (``<storage>/checkpoints/<name>-<trial>-split<i>``).
GDS keeps one experiment per round.

GDS uses the target's labels to pick the types: it is an oracle upper bound for the
unsupervised selection (paper 4.5, Table 6), not a method one can deploy on an unlabeled
target. Its reports say so.

MLflow: one parent run per sweep or search (reopened on resume), one nested run per trial with
the rule, tau, the domain set (sorted list and stable key) and SRCC/PLCC; the best choice on the
parent; the summary table, plot and report as artifacts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from dgqa_ray import storage
from dgqa_ray.config import NUM_KADID_TYPES, PipelineConfig, save_config
from dgqa_ray.pipeline import (
    RoleData,
    check_data_roots,
    dataset_key,
    domain_key,
    regressor_init_checkpoint,
    train_and_evaluate,
)

TUNE_DIR = "tune"
"""Tune experiments go to ``<storage>/tune/<name>``."""
METRIC = "target_srcc"
"""What every search maximises: the median target SRCC over the trial's splits."""
TRIAL_COLUMNS = (
    "trial",
    "rule",
    "tau",
    "round",
    "added",
    "n_types",
    "domain_set",
    "domain_key",
    "target_srcc",
    "target_plcc",
    "target_krcc",
    "epochs",
    "status",
)


def _say(log: Callable[[str], None], text: str) -> None:
    log(f"[search] {text}")


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
    log: Callable[[str], None] = print,
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
        _say(log, f"{experiment}: resuming the Tune experiment at {uri}")
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
    _say(
        log,
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
            _say(log, f"{experiment}: trial {point.get('key')} failed: {result.error}")
        elif metrics:
            on_result(point, metrics)  # trials that ended before a restart, or missed callbacks
        by_key[point.get("key")] = (metrics, status)
    return [(p, *by_key.get(p["key"], (None, "missing"))) for p in points]


# --------------------------------------------------------------------------------------------
# MLflow: one nested run per trial, logged once (also across restarts)
# --------------------------------------------------------------------------------------------


class TrialLog:
    """Logs each finished trial once as a nested run of the search's parent run."""

    def __init__(self, tracker, describe: Callable[[Mapping[str, Any]], dict[str, Any]]):
        self.tracker = tracker
        self.describe = describe
        self.logged = set(tracker.child_tags("dgqa.trial_key"))
        self.rows: dict[str, dict[str, Any]] = {}

    def __call__(self, point: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        key = point["key"]
        row = {**self.describe(point), **_trial_metrics(metrics)}
        self.rows[key] = row
        if key in self.logged:
            return
        self.logged.add(key)
        params = {k: row[k] for k in ("rule", "tau", "round", "added") if row.get(k) is not None}
        params.update(
            {
                "domain_set": row["domain_set"],
                "domain_key": row["domain_key"],
                "n_types": row["n_types"],
                "trial": key,
            }
        )
        with self.tracker.nested(f"trial {key}", tags={"dgqa.trial_key": key}) as run:
            run.log_params(params)
            run.log_metrics(
                {
                    k: v
                    for k, v in metrics.items()
                    if k.startswith(("target_", "split")) and isinstance(v, int | float)
                },
                step=int(metrics.get("epoch", 0) or 0),
            )


def _trial_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("n_types", "domain_key", METRIC, "target_plcc", "target_krcc", "epoch")
    row = {k: metrics.get(k) for k in keys}
    row["domain_set"] = str(_set_of(row))
    row["epochs"] = row.pop("epoch")
    return row


# --------------------------------------------------------------------------------------------
# Shared driver steps
# --------------------------------------------------------------------------------------------


def _absolute(cfg: PipelineConfig) -> PipelineConfig:
    """Local paths absolute, so that Tune trials (own working directory) find them."""
    out = os.path.abspath(cfg.output_dir)
    store = cfg.storage if storage.is_s3(cfg.storage) else storage.normalize(cfg.storage)
    return dataclasses.replace(cfg, output_dir=out, storage=store)


def quiet_tracker(cfg: PipelineConfig):
    """A tracker that records nothing (the search's stages are the pipeline's, already
    tracked by the pipeline's own runs)."""
    from dgqa_ray.tracking import Tracker

    off = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, enabled=False))
    return Tracker(off)


@dataclass
class SearchResult:
    kind: str
    name: str
    table: pd.DataFrame
    """Every trial: rule/tau or round/added, the domain set, SRCC/PLCC/KRCC, status."""
    best: dict[str, Any]
    out_dir: str
    report_path: str
    files: dict[str, str] = field(default_factory=dict)
    rounds: pd.DataFrame | None = None
    seconds: float = 0.0


def _prepare(cfg: PipelineConfig, name: str, log) -> tuple[Any, TrialContext, Path]:
    from dgqa_ray.pipeline import prepare_stages

    prepared = prepare_stages(cfg, quiet_tracker(cfg), log)
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


def _fmt(value: Any) -> str:
    return (
        "nan"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.4f}" if isinstance(value, float) else str(value))
    )


# --------------------------------------------------------------------------------------------
# The tau sweep
# --------------------------------------------------------------------------------------------


def sweep_points(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The sweep's trials: ``mean_prob`` at each tau of ``search.taus`` (default grid around
    1/25) and, if asked, one ``topk_vote`` trial (it has no tau)."""
    points: list[dict[str, Any]] = []
    if "mean_prob" in cfg.search.rules:
        for tau in cfg.search.resolved_taus:
            points.append({"key": f"mean_prob-tau{tau:.4g}", "rule": "mean_prob", "tau": tau})
    if "topk_vote" in cfg.search.rules:
        sel = cfg.selection
        points.append(
            {"key": f"topk_vote-k{sel.k}-share{sel.share:g}", "rule": "topk_vote", "tau": None}
        )
    return points


def run_tau_sweep(
    cfg: PipelineConfig, name: str | None = None, log: Callable[[str], None] = print
) -> SearchResult:
    """Sweep tau (and the rule) over the cached similarity table; see the module docstring."""
    from dgqa_ray.tracking import Tracker

    started = time.monotonic()
    cfg = _absolute(cfg)
    name = name or f"{cfg.run_name}-tau"
    check_data_roots(cfg, scores_needed_by="a tau sweep")  # before Ray starts
    cfg = init_ray_for_search(cfg)
    prepared, context, out_dir = _prepare(cfg, name, log)
    save_config(cfg, str(out_dir / "config.yaml"))
    points = sweep_points(cfg)

    with Tracker(cfg, run_name=name, resume_key=f"tau:{name}") as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"dgqa.search": "tau_sweep", "stage": "running"})
        tracker.log_params({"n_trials": len(points), "dgqa_selected": _ids(prepared)})
        trials = TrialLog(
            tracker, lambda p: {"trial": p["key"], "rule": p["rule"], "tau": p.get("tau")}
        )
        outcome = run_trials(cfg, context, name, points, trials, log)
        table = _trial_table(outcome, trials)
        best = _best(table)
        files = _write_sweep(cfg, prepared, table, best, out_dir, name, time.monotonic() - started)
        _log_best(tracker, best, files)
    seconds = time.monotonic() - started
    _say(log, f"{name}: {len(table)} trial(s) in {seconds:.0f} s; report {files['report']}")
    return SearchResult(
        "tau", name, table, best, str(out_dir), files["report"], files, seconds=seconds
    )


def _ids(prepared) -> str:
    return ",".join(str(t) for t in prepared.outcome.selection.selected)


def _trial_table(outcome, trials: TrialLog) -> pd.DataFrame:
    rows = []
    for point, metrics, status in outcome:
        row = dict(trials.rows.get(point["key"]) or {"trial": point["key"]})
        for key in ("rule", "tau", "round", "added"):
            row.setdefault(key, point.get(key))
        if metrics is None:
            row.update({METRIC: float("nan"), "target_plcc": float("nan")})
        elif not metrics.get("n_types"):
            status = "empty set"
        row["status"] = status
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(TRIAL_COLUMNS))


def _best(table: pd.DataFrame) -> dict[str, Any]:
    scored = table[table[METRIC].notna()]
    if scored.empty:
        return {}
    row = scored.loc[scored[METRIC].astype(float).idxmax()]
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def _log_best(tracker, best: Mapping[str, Any], files: Mapping[str, str]) -> None:
    if best:
        tracker.log_params(
            {
                f"best_{k}": best[k]
                for k in ("trial", "rule", "tau", "domain_set", "domain_key", "n_types")
                if best.get(k) is not None
            }
        )
        tracker.log_metrics(
            {f"best_{k}": best[k] for k in (METRIC, "target_plcc") if best.get(k) is not None}
        )
    for path in files.values():
        tracker.log_artifact(path)
    tracker.set_tags({"stage": "done"})


def _paper_section(cfg: PipelineConfig, table_names: Sequence[str]) -> list[str]:
    """The paper's numbers for this target, from the named reference tables."""
    from dgqa_ray import reports

    target = reports.target_key(cfg.data.target_dataset, cfg.data.target_subset)
    frames = []
    for stem in table_names:
        path = reports.reference_dir() / f"{stem}.csv"
        if path.exists():
            found = reports.paper_numbers(path, target)
            if not found.empty:
                frames.append(found)
    if not frames:
        return [f"The paper reports no numbers for the target `{target}`.", ""]
    paper = pd.concat(frames, ignore_index=True)[["source", "label", "srcc", "plcc"]]
    return [f"The paper's numbers for `{target}`:", "", reports.markdown_table(paper), ""]


def _matrix_section(
    cfg: PipelineConfig, extra: Mapping[str, Sequence[int]], truth: Sequence[int] | None = None
) -> list[str]:
    from dgqa_ray import reports

    return [
        reports.selections_across_targets(
            cfg.output_dir, reports.reference_dir(), dict(extra), truth
        ),
        "",
    ]


def _proxy_note(cfg: PipelineConfig) -> list[str]:
    if "embedded" in (cfg.data.source_dataset, cfg.data.target_dataset):
        return [
            "Scores of the embedded default are **full-reference proxies** against the "
            "pristine tiles, not subjective ratings.",
            "",
        ]
    return []


def _write_sweep(cfg, prepared, table, best, out_dir: Path, name: str, seconds: float):
    from matplotlib.figure import Figure

    from dgqa_ray import reports

    files = {"table": str(out_dir / "trials.csv")}
    table.to_csv(files["table"], index=False)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    mean = table[table["rule"] == "mean_prob"].sort_values("tau")
    ax.plot(mean["tau"], mean[METRIC], "o-", label="mean_prob")
    for _, row in mean.iterrows():
        ax.annotate(str(int(row["n_types"] or 0)), (row["tau"], row[METRIC]), fontsize=7)
    vote = table[table["rule"] == "topk_vote"]
    if not vote.empty and pd.notna(vote[METRIC].iloc[0]):
        ax.axhline(float(vote[METRIC].iloc[0]), ls="--", c="tab:orange", label="topk_vote")
    ax.axvline(1.0 / NUM_KADID_TYPES, ls=":", c="grey", label="tau = 1/25")
    ax.set_xlabel("tau")
    ax.set_ylabel("target SRCC (median over splits)")
    ax.set_title(f"{name}: target SRCC vs tau (labels: types kept)", fontsize=9)
    ax.legend(fontsize=8)
    files["plot"] = reports.save_figure(fig, out_dir / "srcc_vs_tau.png")

    lines = [f"# Tau sweep `{name}`", ""]
    lines += _proxy_note(cfg)
    lines += [
        f"Target `{cfg.data.target_dataset}`, source `{cfg.data.source_dataset}`; "
        f"{cfg.search.splits} split(s) x {cfg.search.epochs or cfg.train.epochs} epoch(s) per "
        f"trial; {len(table)} trials in {seconds:.0f} s. The pipeline's rule "
        f"(`{cfg.selection.rule}`) selected {list(prepared.outcome.selection.selected)}.",
        "",
        "## Trials",
        "",
        reports.markdown_table(table.drop(columns=["round", "added"])),
        "",
    ]
    if best:
        lines += [
            f"Best: `{best['trial']}`, {int(best['n_types'])} types {best['domain_set']}, "
            f"target SRCC {_fmt(best[METRIC])}, PLCC {_fmt(best['target_plcc'])}.",
            "",
        ]
    lines += ["## The paper", ""]
    lines += _paper_section(
        cfg, ["paper_table3_syn_to_authentic", "paper_table5_ablation", "paper_table4_pipal"]
    )
    lines += _matrix_section(
        cfg, {f"{name} best": _set_of(best)} if best else {}, prepared.target_types
    )
    files["report"] = str(out_dir / "report.md")
    Path(files["report"]).write_text("\n".join(lines) + "\n")
    return files


def _set_of(row: Mapping[str, Any]) -> list[int]:
    key = row.get("domain_key")
    return [] if not key or key == "none" else [int(t) for t in str(key).split("-")]


# --------------------------------------------------------------------------------------------
# Greedy domain selection (GDS)
# --------------------------------------------------------------------------------------------


def gds_point(types: Sequence[int], round_: int, added: int | None) -> dict[str, Any]:
    types = sorted(int(t) for t in types)
    return {"key": f"set-{domain_key(types)}", "types": types, "round": round_, "added": added}


def run_gds_search(
    cfg: PipelineConfig, name: str | None = None, log: Callable[[str], None] = print
) -> SearchResult:
    """Greedy forward selection (paper 4.5): each round trains every remaining candidate added
    to the current set as parallel trials and keeps the best by target SRCC; stops when no
    candidate improves by more than ``search.gds_min_gain``, at ``search.gds_max_size`` types
    or after ``search.gds_max_rounds`` rounds. Uses target labels: an oracle upper bound."""
    from dgqa_ray.tracking import Tracker

    started = time.monotonic()
    cfg = _absolute(cfg)
    search = cfg.search
    name = name or f"{cfg.run_name}-gds"
    check_data_roots(cfg, scores_needed_by="a greedy domain search")  # before Ray starts
    cfg = init_ray_for_search(cfg)
    prepared, context, out_dir = _prepare(cfg, name, log)
    save_config(cfg, str(out_dir / "config.yaml"))
    candidates = list(search.resolved_candidates)

    with Tracker(cfg, run_name=name, resume_key=f"gds:{name}") as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"dgqa.search": "gds", "dgqa.oracle": "uses target labels"})
        tracker.log_params({"dgqa_selected": _ids(prepared), "candidates": str(candidates)})
        trials = TrialLog(
            tracker,
            lambda p: {"trial": p["key"], "round": p["round"], "added": p.get("added")},
        )
        current: list[int] = []
        best_score = -math.inf
        rounds: list[dict[str, Any]] = []
        outcomes = []
        if search.gds_start == "dgds":
            current = sorted(int(t) for t in prepared.outcome.selection.selected)
            start = run_trials(
                cfg, context, f"{name}-round0", [gds_point(current, 0, None)], trials, log
            )
            outcomes += start
            metrics = start[0][1] or {}
            best_score = float(metrics.get(METRIC, float("nan")))
            if math.isnan(best_score):
                best_score = -math.inf
            rounds.append(_round_row(0, None, current, metrics, 1, True))
        stop = "max rounds"
        for round_ in range(1, search.gds_max_rounds + 1):
            remaining = [t for t in candidates if t not in current]
            if not remaining:
                stop = "no candidates left"
                break
            if len(current) >= search.gds_max_size:
                stop = f"size limit {search.gds_max_size}"
                break
            points = [gds_point([*current, t], round_, t) for t in remaining]
            _say(log, f"{name}: round {round_}: {current} + one of {remaining}")
            outcome = run_trials(cfg, context, f"{name}-round{round_}", points, trials, log)
            outcomes += outcome
            scored = [
                (float(m[METRIC]), p)
                for p, m, _ in outcome
                if m and not math.isnan(float(m.get(METRIC, float("nan"))))
            ]
            if not scored:
                stop = "every trial of the round failed"
                break
            score, point = max(scored, key=lambda x: x[0])
            metrics = next(m for p, m, _ in outcome if p["key"] == point["key"])
            improved = score > best_score + search.gds_min_gain
            rounds.append(
                _round_row(round_, point["added"], point["types"], metrics, len(points), improved)
            )
            _say(
                log,
                f"{name}: round {round_}: best + #{point['added']} -> SRCC {score:.4f}"
                f" ({'kept' if improved else 'no gain, stop'})",
            )
            if not improved:
                stop = "no candidate improves"
                break
            current, best_score = sorted(point["types"]), score
        rounds_table = pd.DataFrame(rounds)
        table = _trial_table(outcomes, trials)
        kept = rounds_table[rounds_table["improved"]] if not rounds_table.empty else rounds_table
        best = dict(kept.iloc[-1]) if not kept.empty else {}
        if best:
            best = {**best, "trial": f"set-{best['domain_key']}"}
        files = _write_gds(
            cfg,
            prepared,
            table,
            rounds_table,
            best,
            stop,
            out_dir,
            name,
            time.monotonic() - started,
        )
        tracker.log_params({"stop_reason": stop, "rounds": len(rounds)})
        for row in rounds:
            tracker.log_metrics({"round_best_srcc": row[METRIC]}, step=int(row["round"]))
        _log_best(tracker, best, files)
    seconds = time.monotonic() - started
    _say(
        log,
        f"{name}: {len(rounds)} round(s), stopped: {stop}; final set {current}; "
        f"report {files['report']}",
    )
    return SearchResult(
        "gds",
        name,
        table,
        best,
        str(out_dir),
        files["report"],
        files,
        rounds=rounds_table,
        seconds=seconds,
    )


def _round_row(round_, added, types, metrics, n_trials, improved) -> dict[str, Any]:
    return {
        "round": round_,
        "added": added,
        "n_types": len(types),
        "domain_set": str(sorted(types)),
        "domain_key": domain_key(types),
        METRIC: float(metrics.get(METRIC, float("nan"))),
        "target_plcc": float(metrics.get("target_plcc", float("nan"))),
        "trials": n_trials,
        "improved": bool(improved),
    }


def _write_gds(cfg, prepared, table, rounds, best, stop, out_dir: Path, name, seconds):
    from matplotlib.figure import Figure

    from dgqa_ray import reports

    files = {"table": str(out_dir / "trials.csv"), "rounds": str(out_dir / "rounds.csv")}
    table.to_csv(files["table"], index=False)
    rounds.to_csv(files["rounds"], index=False)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    tried = table[table[METRIC].notna()]
    ax.scatter(tried["round"], tried[METRIC], s=12, alpha=0.5, label="candidates")
    if not rounds.empty:
        ax.plot(rounds["round"], rounds[METRIC], "o-", c="tab:red", label="best of round")
        for _, row in rounds.iterrows():
            if row["added"] is not None and not pd.isna(row["added"]):
                ax.annotate(f"+{int(row['added'])}", (row["round"], row[METRIC]), fontsize=7)
    ax.set_xlabel("round")
    ax.set_ylabel("target SRCC (median over splits)")
    ax.set_title(f"{name}: greedy domain selection (oracle: uses target labels)", fontsize=9)
    ax.legend(fontsize=8)
    files["plot"] = reports.save_figure(fig, out_dir / "srcc_per_round.png")

    lines = [f"# Greedy domain selection `{name}`", ""]
    lines += [
        "**An oracle upper bound, not an unsupervised method:** GDS ranks candidate sets by "
        "SRCC on the target's labels (paper 4.5, Table 6), which an unlabeled target does not "
        "have.",
        "",
    ]
    lines += _proxy_note(cfg)
    lines += [
        f"Start: {cfg.search.gds_start}; candidates {list(cfg.search.resolved_candidates)}; "
        f"{cfg.search.splits} split(s) x {cfg.search.epochs or cfg.train.epochs} epoch(s) per "
        f"trial; {len(table)} trials in {seconds:.0f} s. Stopped: {stop}.",
        "",
        "## Rounds",
        "",
        reports.markdown_table(rounds) if not rounds.empty else "(none)\n",
        "",
    ]
    if best:
        lines += [
            f"Final set: {best['domain_set']} ({int(best['n_types'])} types), target SRCC "
            f"{_fmt(best[METRIC])}, PLCC {_fmt(best['target_plcc'])}; the unsupervised "
            f"selection (`{cfg.selection.rule}`) picked "
            f"{list(prepared.outcome.selection.selected)}.",
            "",
        ]
    lines += ["## All trials", "", reports.markdown_table(table.drop(columns=["rule", "tau"])), ""]
    lines += ["## The paper (Table 6: DGDS vs GDS)", ""]
    lines += _paper_section(cfg, ["paper_table6_gds"])
    lines += _matrix_section(
        cfg, {f"{name} (GDS)": _set_of(best)} if best else {}, prepared.target_types
    )
    files["report"] = str(out_dir / "report.md")
    Path(files["report"]).write_text("\n".join(lines) + "\n")
    return files


def search_summary(result: SearchResult) -> str:
    """What ``jobs/tune_tau.py`` and ``jobs/gds_search.py`` print at the end."""
    from dgqa_ray import reports

    shown = result.rounds if result.kind == "gds" else result.table
    lines = ["", reports.markdown_table(shown)]
    if result.best:
        lines.append(
            f"Best: {result.best.get('trial')} -> {result.best.get('domain_set')}, target SRCC "
            f"{_fmt(result.best.get(METRIC))}, PLCC {_fmt(result.best.get('target_plcc'))}"
        )
    if result.kind == "gds":
        lines.append("(GDS uses the target's labels: an oracle upper bound, not DGDS.)")
    lines.append(f"Report: {result.report_path}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The jobs' command line (jobs/tune_tau.py, jobs/gds_search.py)
# --------------------------------------------------------------------------------------------

_JOBS = {"tau": ("tune_tau", "<run>-tau"), "gds": ("gds_search", "<run>-gds")}


def get_job_parser(kind: str, description: str):
    """``--config``/``--set``, ``--name`` and ``--max-concurrent`` for a search job."""
    import argparse

    from dgqa_ray.config import add_config_arguments

    _, default_name = _JOBS[kind]
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, default="demo")
    parser.add_argument(
        "--name",
        default=None,
        help=f"{'sweep' if kind == 'tau' else 'search'} name; the same name resumes "
        f"(default: {default_name})",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: search.max_concurrent; 0 = as many as the cluster holds)",
    )
    return parser


def job_main(kind: str, description: str, argv: list[str] | None = None) -> int:
    """Run the tau sweep (``kind="tau"``) or GDS (``"gds"``) from the command line."""
    import sys

    from dgqa_ray.config import ConfigError, config_from_args, with_search_overrides
    from dgqa_ray.data.errors import DatasetError
    from dgqa_ray.user_input import UserInputError, check_name, redact

    job, _ = _JOBS[kind]
    args = get_job_parser(kind, description).parse_args(argv)
    try:
        if args.name is not None:
            check_name(args.name, "--name")
        cfg = with_search_overrides(config_from_args(args), max_concurrent=args.max_concurrent)
        search = "a tau sweep" if kind == "tau" else "a greedy domain search"
        check_data_roots(cfg, scores_needed_by=search)  # before Ray starts
    except (ConfigError, UserInputError, DatasetError, FileNotFoundError) as e:
        print(f"{job}: error: {redact(e)}", file=sys.stderr)
        return 2
    run = run_tau_sweep if kind == "tau" else run_gds_search
    print(search_summary(run(cfg, name=args.name)))
    return 0
