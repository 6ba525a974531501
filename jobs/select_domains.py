"""Select the source distortion types that look like a target: the DGDS stage on its own.

Runs the domain classifier over the (ingested) target set, 5 crops per image averaged, writes
the per-type similarity table, the selected set and a bar chart with the threshold drawn.

Usage:
    python jobs/select_domains.py --checkpoint dgqa_output/storage/checkpoints/demo-classifier/epoch_004 \
        --target-dataset embedded_target --target-storage dgqa_output/storage/embedded/target
    python jobs/select_domains.py --config paper --checkpoint s3://bucket/dgqa/checkpoints/paper-classifier/epoch_015 \
        --set selection.rule=topk_vote
    ray job submit --working-dir . -- python jobs/select_domains.py --checkpoint ... --target-dataset livec

Without --checkpoint, the last checkpoint of the run ``<run_name>-classifier`` under the
config's storage is used (what jobs/train_classifier.py and jobs/full_pipeline.py write).
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
    parser.add_argument("--checkpoint", default=None, help="classifier checkpoint folder or URI")
    parser.add_argument(
        "--target-dataset",
        default=None,
        help="ingested target dataset name (default: the config's data.target_dataset)",
    )
    parser.add_argument(
        "--target-storage",
        default=None,
        help="storage the target was ingested under (default: the config's storage)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: <output_dir>/runs/<run_name>/selection)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from dgqa_ray.config import ConfigError, config_from_args
    from dgqa_ray.data.pipelines import read_dataset
    from dgqa_ray.data.shards import ManifestError, dataset_uri, read_manifest
    from dgqa_ray.pipeline import select_target_domains
    from dgqa_ray.train import init_ray_for_training, latest_progress
    from dgqa_ray.user_input import UserInputError, check_name, check_uri, redact

    args = get_args_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        for flag in ("checkpoint", "target_storage"):
            if getattr(args, flag) is not None:
                check_uri(getattr(args, flag), f"--{flag.replace('_', '-')}")
        if args.target_dataset is not None:
            check_name(args.target_dataset, "--target-dataset")
        checkpoint = args.checkpoint
        if checkpoint is None:
            found = latest_progress(cfg.storage, cfg.classifier_run_name)
            if found is None:
                raise UserInputError(
                    f"--checkpoint: not given, and no classifier run {cfg.classifier_run_name} "
                    f"under {cfg.storage}"
                )
            checkpoint = found[0]
        dataset = args.target_dataset or cfg.data.target_dataset
        storage_uri = args.target_storage or cfg.storage
        read_manifest(dataset_uri(storage_uri, dataset))  # ingested and complete, before Ray
    except (ConfigError, UserInputError, ManifestError, ValueError, FileNotFoundError) as e:
        print(f"select_domains: error: {redact(e)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "runs" / cfg.run_name / "selection"
    cfg = init_ray_for_training(cfg)
    target_ds = read_dataset(storage_uri, dataset)
    try:
        outcome = select_target_domains(cfg, checkpoint, target_ds, out, reuse=False)
    except (ValueError, FileNotFoundError) as e:
        print(f"select_domains: error: {redact(e)}", file=sys.stderr)
        return 2
    s = outcome.selection
    print(f"selected ({s.rule}, threshold {s.threshold:.4f}): {list(s.selected)} {s.names}")
    print(f"{outcome.other.rule} would select: {list(outcome.other.selected)}")
    for name, path in outcome.files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
