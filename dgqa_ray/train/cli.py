"""The command line shared by ``jobs/train_classifier.py`` and ``jobs/train_regressor.py``.

Both train one model on an ingested dataset under ``--storage`` with ``train.train_from_storage``
and print its history and checkpoints; only the dataset's default and the regressor's
``--dist-types`` differ.
"""

from __future__ import annotations

import argparse
import sys

from .checkpoints import TASKS


def dist_types_arg(text: str) -> list[int]:
    """``1,3,10`` or names (``gaussian_blur,white_noise``) -> KADID ids."""
    from dgqa_ray.distortions import get_distortion

    try:
        return [get_distortion(t.strip()).dist_type for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def get_args_parser(task: str, description: str) -> argparse.ArgumentParser:
    """``--config``/``--set``, ``--storage``, ``--dataset``, ``--split``, ``--run-name`` (and
    ``--dist-types`` for the regressor)."""
    from dgqa_ray.config import add_config_arguments

    if task not in TASKS:
        raise ValueError(f"task: invalid value {task!r}; allowed: {', '.join(TASKS)}")
    role = "classifier" if task == "classifier" else "source"
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--storage",
        default=None,
        help="local folder or s3://bucket/prefix holding the ingested dataset; checkpoints go "
        "to <storage>/checkpoints/<run-name>/ (default: the config's storage)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"name of the ingested {role} dataset under --storage (default: the config's "
        f"data.{role}_dataset)",
    )
    if task == "regressor":
        parser.add_argument(
            "--dist-types",
            type=dist_types_arg,
            default=None,
            metavar="IDS",
            help="train only on these KADID types, ids or names, comma-separated (default: all)",
        )
    parser.add_argument(
        "--split",
        type=int,
        default=0,
        help="which reference-grouped split trains/validates, 0..eval.n_splits-1 (default: 0)",
    )
    parser.add_argument(
        "--run-name",
        default=None,
        help=f"checkpoint folder name; the same name resumes (default: <run_name>-{task})",
    )
    return parser


def main(task: str, description: str, argv: list[str] | None = None) -> int:
    """Parse, check, train (or resume, or reuse), print; exit status 0, 2 on bad input (found
    before Ray starts: flags, config, the ingested dataset), 1 when training fails."""
    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.data.shards import ManifestError
    from dgqa_ray.train import (
        check_ingested,
        format_history,
        init_ray_for_training,
        train_from_storage,
    )
    from dgqa_ray.user_input import UserInputError, check_name, check_uri, redact

    job = f"train_{task}"
    args = get_args_parser(task, description).parse_args(argv)
    try:
        if args.storage is not None:
            check_uri(args.storage, "--storage")
        if args.run_name is not None:
            check_name(args.run_name, "--run-name")
        if args.dataset is not None:
            check_name(args.dataset, "--dataset")
        cfg = config_from_args(args)
        check_ingested(task, cfg, args.dataset, args.storage)
    except (ConfigError, UserInputError, ManifestError, ValueError, FileNotFoundError) as e:
        print(f"{job}: error: {redact(e)}", file=sys.stderr)
        return 2
    try:
        cfg = init_ray_for_training(cfg)
        result = train_from_storage(
            task,
            cfg,
            args.dataset,
            split_index=args.split,
            run_name=args.run_name,
            storage_uri=args.storage,
            dist_types=getattr(args, "dist_types", None),
        )
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"{job}: error: {redact(e)}", file=sys.stderr)
        return 1
    print(format_history(result))
    print(result.summary())
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"last checkpoint: {result.last_checkpoint}")
    return 0
