"""Train the domain classifier F_D (ResNet, 25 KADID types or 26 with pristine) with Ray Train.

The classifier's dataset (KADIS-style: one distortion type per image, ``dist_type`` labels)
must be ingested under ``--storage`` (``jobs/ingest.py``). Split ``--split`` of the paper's
reference-grouped 80/20 splits trains and validates (cross-entropy, top-1 accuracy). With 25
classes pristine images are left out; ``--set model.num_classes=26`` keeps them as class 0 (the
authors' code). A checkpoint is written every epoch to ``<storage>/checkpoints/<run-name>/``;
rerunning with the same run name resumes from the last one. See ``dgqa_ray/train.py``.

Usage:
    python jobs/train_classifier.py                                       # demo preset
    python jobs/train_classifier.py --config paper --storage s3://lake/dgqa
    python jobs/train_classifier.py --set model.num_classes=26 --run-name demo-classifier-26
    python jobs/train_classifier.py --set train.classifier_epochs=2 --set train.num_workers=2
    ray job submit --working-dir . -- python jobs/train_classifier.py --config paper \\
        --storage s3://lake/dgqa

Prints the per-epoch metrics and the best and last checkpoint (selection reads the best). Exit status: 0
trained (or already complete), 1 bad arguments, config or data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import dgqa_ray  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a bare checkout, e.g. a `ray job submit --working-dir .` without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
        help="name of the ingested classifier dataset under --storage (default: the config's "
        "data.classifier_dataset)",
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
        help="checkpoint folder name; the same name resumes (default: <run_name>-classifier)",
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
            "classifier",
            cfg,
            args.dataset,
            split_index=args.split,
            run_name=args.run_name,
            storage_uri=args.storage,
        )
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"train_classifier: error: {e}", file=sys.stderr)
        return 1
    print(format_history(result))
    print(result.summary())
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"last checkpoint: {result.last_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
