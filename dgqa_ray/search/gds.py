"""Greedy domain selection (GDS, paper 4.5 and Table 6): one Tune experiment per round.

Each round trains every remaining candidate added to the current set, as parallel trials, and
keeps the best by target SRCC. GDS ranks sets by the target's labels: an oracle upper bound for
the unsupervised selection, not a method for an unlabeled target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from dgqa_ray.config import PipelineConfig, save_config
from dgqa_ray.pipeline import check_data_roots, domain_key
from dgqa_ray.search.report import write_gds
from dgqa_ray.search.results import (
    METRIC,
    SearchResult,
    TrialLog,
    log_best,
    selected_ids,
    trial_table,
)
from dgqa_ray.search.trials import absolute, init_ray_for_search, prepare, run_trials, say


def gds_point(types: Sequence[int], round_: int, added: int | None) -> dict[str, Any]:
    types = sorted(int(t) for t in types)
    return {"key": f"set-{domain_key(types)}", "types": types, "round": round_, "added": added}


def run_gds_search(cfg: PipelineConfig, name: str | None = None) -> SearchResult:
    """Greedy forward selection (paper 4.5): each round trains every remaining candidate added
    to the current set as parallel trials and keeps the best by target SRCC; stops when no
    candidate improves by more than ``search.gds_min_gain``, at ``search.gds_max_size`` types
    or after ``search.gds_max_rounds`` rounds. Uses target labels: an oracle upper bound."""
    from dgqa_ray.tracking import Tracker

    started = time.monotonic()
    cfg = absolute(cfg)
    search = cfg.search
    name = name or f"{cfg.run_name}-gds"
    check_data_roots(cfg, scores_needed_by="a greedy domain search")  # before Ray starts
    cfg = init_ray_for_search(cfg)
    prepared, context, out_dir = prepare(cfg, name)
    save_config(cfg, str(out_dir / "config.yaml"))
    candidates = list(search.resolved_candidates)

    with Tracker(cfg, run_name=name, resume_key=f"gds:{name}") as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"dgqa.search": "gds", "dgqa.oracle": "uses target labels"})
        tracker.log_params({"dgqa_selected": selected_ids(prepared), "candidates": str(candidates)})
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
                cfg, context, f"{name}-round0", [gds_point(current, 0, None)], trials
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
            say(f"{name}: round {round_}: {current} + one of {remaining}")
            outcome = run_trials(cfg, context, f"{name}-round{round_}", points, trials)
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
            say(
                f"{name}: round {round_}: best + #{point['added']} -> SRCC {score:.4f}"
                f" ({'kept' if improved else 'no gain, stop'})",
            )
            if not improved:
                stop = "no candidate improves"
                break
            current, best_score = sorted(point["types"]), score
        rounds_table = pd.DataFrame(rounds)
        table = trial_table(outcomes, trials)
        kept = rounds_table[rounds_table["improved"]] if not rounds_table.empty else rounds_table
        best = dict(kept.iloc[-1]) if not kept.empty else {}
        if best:
            best = {**best, "trial": f"set-{best['domain_key']}"}
        files = write_gds(
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
        log_best(tracker, best, files)
    seconds = time.monotonic() - started
    say(
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
