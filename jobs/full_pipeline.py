"""DGQA end to end: data -> domain classifier -> selection -> regressors -> evaluation -> report.

Usage:
    python jobs/full_pipeline.py                                   # the embedded default (demo preset)
    python jobs/full_pipeline.py --config paper --set data.target_dataset=koniq10k
    python jobs/full_pipeline.py --set eval.n_splits=2 --set train.epochs=2 --redo selection
    ray job submit --working-dir . -- python jobs/full_pipeline.py --base-dir "$PWD"   (RAY_AUTH_MODE=token)

The embedded default synthesizes its own data from photos that ship with scikit-image, so it
needs no download; it runs on a local Ray instance and writes everything under ./dgqa_output
(datasets and checkpoints in dgqa_output/storage, reports in dgqa_output/runs/<run>, MLflow in
dgqa_output/mlflow.db). Rerunning reuses finished stages; --redo names stages to recompute.
"""

from __future__ import annotations

import argparse
import sys


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.config import STAGES, add_config_arguments

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, default="demo")
    parser.add_argument(
        "--redo",
        action="append",
        default=[],
        choices=STAGES,
        help="recompute this stage even if a finished result exists (repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    import dataclasses

    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.data.errors import DatasetError
    from dgqa_ray.pipeline import check_data_roots, pipeline_summary, run_pipeline
    from dgqa_ray.user_input import UserInputError, redact

    args = get_args_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.redo:
            cfg = dataclasses.replace(cfg, redo=tuple(dict.fromkeys((*cfg.redo, *args.redo))))
        check_data_roots(cfg)  # before Ray starts: a wrong root costs seconds and one line
    except (ConfigError, UserInputError, DatasetError, FileNotFoundError) as e:
        print(f"full_pipeline: error: {redact(e)}", file=sys.stderr)
        return 2
    try:
        result = run_pipeline(cfg, check_roots=False)
    except DatasetError as e:  # bad images past the allowed share, found while ingesting
        print(f"full_pipeline: error: {redact(e)}", file=sys.stderr)
        return 1
    print(pipeline_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
