"""What a search keeps of its trials: their table, the best trial, their MLflow runs, the result.

Driver-side bookkeeping: ``TrialLog`` logs each finished trial once as a nested
MLflow run and keeps its row, ``trial_table`` puts the rows in the order of the points,
``best_trial`` picks the highest target SRCC and ``log_best`` records it on the parent run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dgqa_ray.config import PipelineConfig

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


def set_of(row: Mapping[str, Any]) -> list[int]:
    """The domain set of a trial's row, read back from its ``domain_key``."""
    key = row.get("domain_key")
    return [] if not key or key == "none" else [int(t) for t in str(key).split("-")]


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
    row["domain_set"] = str(set_of(row))
    row["epochs"] = row.pop("epoch")
    return row


def quiet_tracker(cfg: PipelineConfig):
    """A tracker that records nothing (the search's stages are the pipeline's, already
    tracked by the pipeline's own runs)."""
    from dgqa_ray.tracking import Tracker

    off = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, enabled=False))
    return Tracker(off)


def selected_ids(prepared) -> str:
    """The pipeline's own selection (``pipeline.PreparedRun``), as a parameter: ``1,3,17``."""
    return ",".join(str(t) for t in prepared.outcome.selection.selected)


# --------------------------------------------------------------------------------------------
# The trials' table and the best trial
# --------------------------------------------------------------------------------------------


def trial_table(outcome, trials: TrialLog) -> pd.DataFrame:
    """One row per ``(point, metrics, status)`` of ``trials.run_trials``, in its order."""
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


def best_trial(table: pd.DataFrame) -> dict[str, Any]:
    """The row with the highest target SRCC (missing values as None), or {} if none scored."""
    scored = table[table[METRIC].notna()]
    if scored.empty:
        return {}
    row = scored.loc[scored[METRIC].astype(float).idxmax()]
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def log_best(tracker, best: Mapping[str, Any], files: Mapping[str, str]) -> None:
    """The best choice as the parent run's params and metrics, the files as its artifacts."""
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
