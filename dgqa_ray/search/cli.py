"""The search jobs' command line: ``jobs/tune_tau.py`` and ``jobs/gds_search.py``."""

from __future__ import annotations

from dgqa_ray.pipeline import check_data_roots
from dgqa_ray.search.gds import run_gds_search
from dgqa_ray.search.report import search_summary
from dgqa_ray.search.tau import run_tau_sweep

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
