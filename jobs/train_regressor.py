"""Train a quality regressor F_R (ResNet, one output, L1 loss) with Ray Train on a source dataset.

The source must be ingested under ``--storage`` (``jobs/ingest.py``). One of the paper's
reference-grouped 80/20 splits (``--split``) trains and validates; ``--dist-types`` keeps only
the selected distortion types (DGQA) instead of all 25 (the baseline). A checkpoint is written
every epoch to ``<storage>/checkpoints/<run-name>/``; rerunning with the same run name resumes
from the last one (a finished run is not trained again). See ``dgqa_ray/train.py``.

Usage:
    python jobs/train_regressor.py                                        # demo preset, all types
    python jobs/train_regressor.py --dist-types 1,3,10,17,18,25 --run-name demo-regressor-dgqa
    python jobs/train_regressor.py --config paper --storage s3://lake/dgqa --split 2 \\
        --dist-types 1,3,9,18,20,25 --run-name livec-dgqa-split2
    python jobs/train_regressor.py --set train.epochs=3 --set train.num_workers=2
    ray job submit --working-dir . -- python jobs/train_regressor.py --config paper \\
        --storage s3://lake/dgqa --dist-types 1,3,9,18,20,25

Prints the best and last checkpoint and the per-epoch metrics. Exit status: 0 trained (or
already complete), 1 bad arguments, config or data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import dgqa_ray  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a bare checkout, e.g. a `ray job submit --working-dir .` without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def dist_types_arg(text: str) -> list[int]:
    """``1,3,10`` or names (``gaussian_blur,white_noise``) -> KADID ids."""
    from dgqa_ray.distortions import get_distortion

    try:
        return [get_distortion(t.strip()).dist_type for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.config import add_config_arguments

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        help="name of the ingested source dataset under --storage (default: the config's "
        "data.source_dataset)",
    )
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
        help="checkpoint folder name; the same name resumes (default: <run_name>-regressor)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)

    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.train import format_history, init_ray_for_training, train_from_storage

    try:
        cfg = config_from_args(args)
        init_ray_for_training(cfg)
        result = train_from_storage(
            "regressor",
            cfg,
            args.dataset,
            split_index=args.split,
            run_name=args.run_name,
            storage_uri=args.storage,
            dist_types=args.dist_types,
        )
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"train_regressor: error: {e}", file=sys.stderr)
        return 1
    print(format_history(result))
    print(result.summary())
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"last checkpoint: {result.last_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
