"""Score images with a trained quality regressor, on the Ray cluster.

Each image gets the mean of its crops' predicted quality, on the project's training scale:
0 (worst) to 10 (best). The crops are data.eval_crops seeded random crops of the size the
model was trained at. Every image is first read and decoded. Unreadable or corrupt ones are
skipped and listed in <out stem>.unreadable.csv. If more than --max-bad-fraction of them are
unreadable, nothing is scored.

Usage:
    python jobs/score.py --model runs:/<run_id>/model --images photos/ --out scores.csv
    python jobs/score.py --model dgqa_output/storage/checkpoints/demo-dgqa-t1_3-s0/epoch_003 \\
        --images photos/index.csv --out s3://bucket/scores/photos.parquet
    python jobs/score.py --model models:/dgqa-livec/3 --images s3://bucket/photos/ --out scores.csv
    ray job submit --working-dir . -- python jobs/score.py --model ... --images s3://... --out s3://...

--model is a checkpoint folder, local or s3:// (a pipeline run's regressor: summary.json and
the MLflow runs name them). It can also be an MLflow model URI, resolved in the config's
tracking store (tracking.tracking_uri, or MLFLOW_TRACKING_URI).

--images is a folder or an s3:// prefix (every image below it, recursively), or a CSV/Parquet
table with a path column (relative paths are read from the table's folder).
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
        "--model",
        required=True,
        help="regressor checkpoint folder/URI, or MLflow model URI (runs:/..., models:/...)",
    )
    parser.add_argument(
        "--images",
        required=True,
        help="folder, s3:// prefix, or CSV/Parquet table with a path column",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="scores table: .csv or .parquet, local or s3:// (image_id, path, predicted, crops)",
    )
    parser.add_argument(
        "--path-column", default="path", help="table column holding image paths (default: path)"
    )
    parser.add_argument(
        "--id-column", default=None, help="table column of image ids (default: the path)"
    )
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=None,
        help="largest share of unreadable images that is skipped rather than fatal "
        "(default: the config's data.max_bad_fraction)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.data.errors import DatasetError
    from dgqa_ray.scoring import (
        ScoringError,
        list_images,
        load_scoring_model,
        score_images,
        scoring_config,
        table_format,
        unreadable_uri,
        write_table,
    )
    from dgqa_ray.train import init_ray_for_training
    from dgqa_ray.user_input import UserInputError, check_uri, redact

    args = get_args_parser().parse_args(argv)
    try:
        cfg = scoring_config(config_from_args(args))
        for flag in ("model", "images", "out"):
            check_uri(getattr(args, flag), f"--{flag}")
        if args.max_bad_fraction is not None and not 0 <= args.max_bad_fraction < 1:
            raise UserInputError(
                f"--max-bad-fraction: expected a number in [0, 1), got {args.max_bad_fraction}"
            )
        table_format(args.out)  # a bad suffix fails here, not after the scoring
        # Everything that can be checked without Ray, first: the model and the listing.
        model = load_scoring_model(args.model, cfg)
        print(f"model: {model.describe()}")
        images = list_images(args.images, path_column=args.path_column, id_column=args.id_column)
        print(f"images: {len(images)} listed in {args.images}")
    except (
        ConfigError,
        UserInputError,
        ScoringError,
        DatasetError,
        ValueError,
        FileNotFoundError,
    ) as e:
        print(f"score: error: {redact(e)}", file=sys.stderr)
        return 2
    cfg = init_ray_for_training(cfg)
    try:
        result = score_images(model, images, cfg, max_bad_fraction=args.max_bad_fraction)
    except ScoringError as e:
        print(f"score: error: {redact(e)}", file=sys.stderr)
        return 1
    written = write_table(result.scores, args.out)
    print(f"scores: {written} ({len(result.scores)} image(s))")
    if len(result.unreadable):
        listed = write_table(result.unreadable, unreadable_uri(args.out))
        print(f"unreadable: {listed} ({len(result.unreadable)} image(s) skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
