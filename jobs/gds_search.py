"""Greedy domain selection (GDS, paper 4.5 and Table 6) with Ray Tune.

Each round tries adding each remaining candidate type to the current set, as parallel trials
(each trains ``search.splits`` regressors, each its own Ray Train run), and keeps the candidate
with the best median target SRCC; the search stops when no candidate improves by more than
``search.gds_min_gain``, at ``search.gds_max_size`` types or after ``search.gds_max_rounds``.

GDS ranks sets by SRCC on the target's labels: it is an oracle upper bound for the unsupervised
selection, not a method for an unlabeled target.

Usage:
    python jobs/gds_search.py --set search.gds_max_rounds=3 --set search.gds_candidates=[1,3,9,17,18,25]
    python jobs/gds_search.py --set search.gds_start=dgds --set search.early_stop=true
    python jobs/gds_search.py --config paper --name livec-gds
    ray job submit --working-dir . -- python jobs/gds_search.py --config demo

Budget: a round costs (candidates left) x search.splits regressor trainings of search.epochs
epochs. Rerunning with the same --name resumes (finished rounds and trials are kept). Outputs:
<output_dir>/runs/<run>/search/<name>/ (rounds.csv, trials.csv, srcc_per_round.png, report.md)
and one MLflow parent run with a nested run per trial. See docs/search.md.
"""

from __future__ import annotations

import sys


def get_args_parser():
    from dgqa_ray.search.cli import get_job_parser

    return get_job_parser("gds", __doc__)


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.search.cli import job_main

    return job_main("gds", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
