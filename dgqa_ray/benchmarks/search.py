"""The same tau sweep with trials in parallel vs one at a time, in one process.

    python jobs/benchmark.py search                    # demo preset, 1 CPU per trial
    python jobs/benchmark.py search --set search.taus=[0.03,0.04,0.05] --set train.epochs=2

One local Ray instance sized for the parallel run (``init_ray_for_search`` of
``dgqa_ray/search/trials.py``); the stages before the sweep (data, classifier, similarity
table) are made first and not timed; then the sweep runs with ``search.max_concurrent=1``
(serial), then with the concurrency the cluster holds (parallel), each under its own name so
that neither reuses the other's regressors.
MLflow is off: what is timed is Tune, Ray Train and Ray Data. Prints a table with the speedup.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd


def run_search_benchmark(cfg, out_csv: str | None = None) -> pd.DataFrame:
    """Time the sweep serial, then parallel; returns (and prints, and writes) the table."""
    import ray

    from dgqa_ray.pipeline import prepare_stages
    from dgqa_ray.reports import markdown_table
    from dgqa_ray.search.results import quiet_tracker
    from dgqa_ray.search.tau import run_tau_sweep
    from dgqa_ray.search.trials import init_ray_for_search, trial_concurrency

    cfg = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, enabled=False))
    cfg = init_ray_for_search(cfg)
    prepare_stages(cfg, quiet_tracker(cfg), print)  # made (or reused) before any timing
    parallel = trial_concurrency(cfg)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for label, concurrent in (("serial", 1), ("parallel", parallel)):
        run_cfg = dataclasses.replace(
            cfg, search=dataclasses.replace(cfg.search, max_concurrent=concurrent)
        )
        started = time.perf_counter()
        result = run_tau_sweep(run_cfg, name=f"bench-{stamp}-{label}")
        seconds = time.perf_counter() - started
        rows.append(
            {
                "mode": label,
                "trials_at_once": concurrent,
                "trials": len(result.table),
                "seconds": seconds,
                "seconds_per_trial": seconds / max(1, len(result.table)),
                "best_srcc": result.best.get("target_srcc"),
            }
        )
    table = pd.DataFrame(rows)
    table["speedup_vs_serial"] = table["seconds"].iloc[0] / table["seconds"]
    cpus = ray.cluster_resources().get("CPU", 0)
    print(
        f"\nTau sweep, {len(result.table)} trials x {cfg.search.splits} split(s) x "
        f"{cfg.search.epochs or cfg.train.epochs} epoch(s), {cfg.model.backbone} at "
        f"{cfg.data.crop_size}px, {cfg.train.num_workers} worker(s) x "
        f"{cfg.train.cpus_per_worker} CPU per trial, {cpus:g} logical CPUs:\n"
    )
    print(markdown_table(table, floatfmt=".2f"))
    if out_csv:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)
        print(f"wrote {out_csv}")
    return table


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="jobs/benchmark.py search",
        description="The same tau sweep with trials in parallel vs one at a time.",
    )
    add_config_arguments(parser, default="demo")
    parser.add_argument(
        "--out",
        default="dgqa_output/benchmarks/search.csv",
        help="CSV path (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config import ConfigError, config_from_args

    args = get_args_parser().parse_args(argv)
    # One CPU per trial by default, so that a 2-core machine runs two trials at once; a
    # --set train.cpus_per_worker=... on the command line comes later and wins.
    args.overrides = ["train.cpus_per_worker=1", *args.overrides]
    try:
        cfg = config_from_args(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"benchmark search: error: {e}")
        return 2
    run_search_benchmark(cfg, args.out)
    return 0
