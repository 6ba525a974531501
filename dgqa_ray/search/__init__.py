"""Ray Tune searches around the selection: a tau sweep and greedy domain selection (GDS).

    from dgqa_ray.config import load_config
    from dgqa_ray.search import run_gds_search, run_tau_sweep

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

- ``trials``: the trial function (``domain_set_trial``) and its ``TrialContext``, running one
  Tune experiment of trials (``run_trials``, resumed when it exists), their concurrency and the
  search's Ray (``trial_concurrency``, ``init_ray_for_search``).
- ``results``: what a search keeps of its trials: their table, the best one, a nested MLflow
  run per trial (``TrialLog``), the ``SearchResult``.
- ``tau``: the tau sweep (``sweep_points``, ``run_tau_sweep``).
- ``gds``: greedy domain selection (``gds_point``, ``run_gds_search``).
- ``report``: the searches' reports, tables and plots, and ``search_summary``.
- ``cli``: the command line of ``jobs/tune_tau.py`` and ``jobs/gds_search.py``.
"""

from dgqa_ray.search.gds import gds_point, run_gds_search
from dgqa_ray.search.report import search_summary
from dgqa_ray.search.results import METRIC, TRIAL_COLUMNS, SearchResult, TrialLog, quiet_tracker
from dgqa_ray.search.tau import run_tau_sweep, sweep_points
from dgqa_ray.search.trials import (
    TUNE_DIR,
    TrialContext,
    domain_set_trial,
    init_ray_for_search,
    run_trials,
    trial_concurrency,
    trial_types,
)

__all__ = [
    "METRIC",
    "TRIAL_COLUMNS",
    "TUNE_DIR",
    "SearchResult",
    "TrialContext",
    "TrialLog",
    "domain_set_trial",
    "gds_point",
    "init_ray_for_search",
    "quiet_tracker",
    "run_gds_search",
    "run_tau_sweep",
    "run_trials",
    "search_summary",
    "sweep_points",
    "trial_concurrency",
    "trial_types",
]
