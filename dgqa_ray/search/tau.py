"""The tau sweep: one trial per (rule, tau) over the cached similarity table.

``sweep_points`` lists the trials (``mean_prob`` at each tau of ``search.taus``, plus one
``topk_vote`` trial); ``run_tau_sweep`` runs them as one Tune experiment, resumed under the same
name, and writes the sweep's table, plot and report.
"""

from __future__ import annotations

import time
from typing import Any

from dgqa_ray.config import PipelineConfig, save_config
from dgqa_ray.pipeline import check_data_roots
from dgqa_ray.search.report import write_sweep
from dgqa_ray.search.results import (
    SearchResult,
    TrialLog,
    best_trial,
    log_best,
    selected_ids,
    trial_table,
)
from dgqa_ray.search.trials import absolute, init_ray_for_search, prepare, run_trials, say


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


def run_tau_sweep(cfg: PipelineConfig, name: str | None = None) -> SearchResult:
    """Sweep tau (and the rule) over the cached similarity table; see ``dgqa_ray.search``."""
    from dgqa_ray.tracking import Tracker

    started = time.monotonic()
    cfg = absolute(cfg)
    name = name or f"{cfg.run_name}-tau"
    check_data_roots(cfg, scores_needed_by="a tau sweep")  # before Ray starts
    cfg = init_ray_for_search(cfg)
    prepared, context, out_dir = prepare(cfg, name)
    save_config(cfg, str(out_dir / "config.yaml"))
    points = sweep_points(cfg)

    with Tracker(cfg, run_name=name, resume_key=f"tau:{name}") as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"dgqa.search": "tau_sweep", "stage": "running"})
        tracker.log_params({"n_trials": len(points), "dgqa_selected": selected_ids(prepared)})
        trials = TrialLog(
            tracker, lambda p: {"trial": p["key"], "rule": p["rule"], "tau": p.get("tau")}
        )
        outcome = run_trials(cfg, context, name, points, trials)
        table = trial_table(outcome, trials)
        best = best_trial(table)
        files = write_sweep(cfg, prepared, table, best, out_dir, name, time.monotonic() - started)
        log_best(tracker, best, files)
    seconds = time.monotonic() - started
    say(f"{name}: {len(table)} trial(s) in {seconds:.0f} s; report {files['report']}")
    return SearchResult(
        "tau", name, table, best, str(out_dir), files["report"], files, seconds=seconds
    )
