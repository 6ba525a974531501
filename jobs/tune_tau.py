"""Ray Tune sweep of the selection threshold tau and the selection rule.

Each trial selects source types from the cached similarity table (the classifier is not run
again), trains ``search.splits`` regressors on them (each its own Ray Train run) and reports the
median target SRCC/PLCC. Trials run in parallel as far as the cluster's CPUs (or GPUs) allow.

Usage:
    python jobs/tune_tau.py                                        # demo preset, default grid
    python jobs/tune_tau.py --set search.taus=[0.02,0.03,0.04,0.05,0.06] --set search.splits=5
    python jobs/tune_tau.py --config paper --name livec-tau
    ray job submit --working-dir . -- python jobs/tune_tau.py --config demo

The default grid is 0.5, 0.75, 1, 1.25 and 1.5 times 1/25 for ``mean_prob`` plus one
``topk_vote`` trial. Rerunning with the same --name resumes the sweep: finished trials are kept,
unfinished ones resume from their checkpoints. Outputs: <output_dir>/runs/<run>/search/<name>/
(trials.csv, srcc_vs_tau.png, report.md) and one MLflow parent run with a nested run per trial.
See docs/search.md.
"""

from __future__ import annotations

import sys


def get_args_parser():
    from dgqa_ray.search.cli import get_job_parser

    return get_job_parser("tau", __doc__)


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.search.cli import job_main

    return job_main("tau", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
