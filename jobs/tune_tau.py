"""Ray Tune sweep of the selection threshold tau and the selection rule.

Each trial selects source types from the cached similarity table (the classifier is not run
again), trains ``search.splits`` regressors on them (each its own Ray Train run) and reports the
median target SRCC/PLCC. Trials run in parallel as far as the cluster's CPUs (or GPUs) allow.

Usage:
    python jobs/tune_tau.py                                        # demo preset, default grid
    python jobs/tune_tau.py --set search.taus=[0.02,0.03,0.04,0.05,0.06] --set search.splits=5
    python jobs/tune_tau.py --config jobs/configs/paper.yaml --name livec-tau
    ray job submit --working-dir . -- python jobs/tune_tau.py --config jobs/configs/demo.yaml

The default grid is 0.5, 0.75, 1, 1.25 and 1.5 times 1/25 for ``mean_prob`` plus one
``topk_vote`` trial. Rerunning with the same --name resumes the sweep: finished trials are kept,
unfinished ones resume from their checkpoints. Outputs: <output_dir>/runs/<run>/search/<name>/
(trials.csv, srcc_vs_tau.png, report.md) and one MLflow parent run with a nested run per trial.
See docs/search.md.
"""

from __future__ import annotations

import argparse
import sys


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.config import add_config_arguments

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, default="demo")
    parser.add_argument(
        "--name", default=None, help="sweep name; the same name resumes (default: <run>-tau)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: search.max_concurrent; 0 = as many as the cluster holds)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config import ConfigError, config_from_args, with_search_overrides
    from dgqa_ray.tune import run_tau_sweep, search_summary

    args = get_args_parser().parse_args(argv)
    try:
        cfg = with_search_overrides(config_from_args(args), max_concurrent=args.max_concurrent)
    except (ConfigError, FileNotFoundError) as e:
        print(f"tune_tau: error: {e}", file=sys.stderr)
        return 2
    print(search_summary(run_tau_sweep(cfg, name=args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
