"""Train a quality regressor F_R (ResNet, one output, L1 loss) with Ray Train on a source dataset.

The source must be ingested under ``--storage`` (``jobs/ingest.py``). One of the paper's
reference-grouped 80/20 splits (``--split``) trains and validates; ``--dist-types`` keeps only
the selected distortion types (DGQA) instead of all 25 (the baseline). A checkpoint is written
every epoch to ``<storage>/checkpoints/<run-name>/``; rerunning with the same run name resumes
from the last one (a finished run is not trained again). See ``dgqa_ray/train/``.

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


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.train import cli as train_cli

    return train_cli.get_args_parser("regressor", __doc__)


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.train import cli as train_cli

    return train_cli.main("regressor", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
