"""Train the domain classifier F_D (ResNet, 25 KADID types or 26 with pristine) with Ray Train.

The classifier's dataset (KADIS-style: one distortion type per image, ``dist_type`` labels)
must be ingested under ``--storage`` (``jobs/ingest.py``). Split ``--split`` of the paper's
reference-grouped 80/20 splits trains and validates (cross-entropy, top-1 accuracy). With 25
classes pristine images are left out; ``--set model.num_classes=26`` keeps them as class 0 (the
authors' code). A checkpoint is written every epoch to ``<storage>/checkpoints/<run-name>/``;
rerunning with the same run name resumes from the last one. See ``dgqa_ray/train/``.

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
    from dgqa_ray.train import cli as train_cli

    return train_cli.get_args_parser("classifier", __doc__)


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.train import cli as train_cli

    return train_cli.main("classifier", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
