"""DGQA on a target nothing here was tuned on: held-out photos degraded by other libraries.

Usage:
    python jobs/heldout_check.py                       # build the target, run the demo preset on it
    python jobs/heldout_check.py --build-only          # only write dgqa_output/heldout/heldout.csv
    python jobs/heldout_check.py --set train.classifier_epochs=2
    ray job submit --working-dir . -- python jobs/heldout_check.py

The target (``dgqa_ray/demo/heldout_target.py``): tiles of scikit-learn's and matplotlib's sample
photos, which no pool uses, degraded by Pillow and scikit-image (blur, JPEG, noise, contrast,
darkening; 1-2 per image) and scored by MS-SSIM against the pristine tile. The pipeline runs on
it as on any user's labelled table (``data.target_dataset=custom`` with ``data.target_options``),
under its own run name; the job then prints which degradations the selection found, with the
usual baseline / DGQA table. The same command line works for any table of your own.
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
        "--out",
        default="dgqa_output/heldout",
        help="folder of the held-out target (default: %(default)s)",
    )
    parser.add_argument(
        "--images", type=int, default=100, help="degraded images (default: %(default)s)"
    )
    parser.add_argument(
        "--run-name", default="heldout", help="the pipeline run's name (default: %(default)s)"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="write the target and print the command"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.demo.heldout_target import (
        DATASET_NAME,
        build_heldout_target,
        heldout_recovery,
        read_heldout_truth,
    )
    from dgqa_ray.demo.proxy_scores import PROXY_COLUMN

    args = get_args_parser().parse_args(argv)
    try:
        base = config_from_args(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"heldout_check: error: {e}", file=sys.stderr)
        return 2
    tile = tuple(base.demo.tile)
    table = build_heldout_target(args.out, tile=tile, n_images=args.images)
    target = [
        "data.target_dataset=custom",
        f"data.target_root={table}",
        f"data.target_options.score_column={PROXY_COLUMN}",
        "data.target_options.id_column=image_id",
        "data.target_options.ref_column=ref_id",
        f"data.target_options.dataset_name={DATASET_NAME}",
        f"run_name={args.run_name}",
    ]
    command = "python jobs/full_pipeline.py " + " ".join(f"--set {t}" for t in target)
    print(f"held-out target: {table}")
    if args.build_only:
        print(f"run it with:\n  {command}")
        return 0
    try:
        cfg = config_from_args(
            argparse.Namespace(config=args.config, overrides=[*args.overrides, *target])
        )
    except ConfigError as e:
        print(f"heldout_check: error: {e}", file=sys.stderr)
        return 2

    from dgqa_ray.pipeline import pipeline_summary, run_pipeline

    result = run_pipeline(cfg)
    print(pipeline_summary(result))
    found = heldout_recovery(result.selected, read_heldout_truth(table))
    print(
        f"\nHeld-out degradations found by the selection: {found['found']}; missed "
        f"{found['missed']}; selected types describing none of them: {found['extra']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
