"""Ingest a dataset (any adapter) into Parquet shards under --storage, in parallel on Ray.

Every dataset becomes shards of one schema (``dgqa_ray/data/schema.py``) under
``<storage>/<dataset>/``, published by a manifest written last; see ``dgqa_ray/data/ingest.py``.
A rerun with the same source is a no-op ("already ingested"); --force rebuilds. A run that fails
leaves the previous complete version readable.

Usage:
    python jobs/ingest.py --dataset kadid10k --root /data/kadid10k --storage /data/dgqa
    python jobs/ingest.py --dataset koniq10k --root s3://raw/koniq10k --storage s3://lake/dgqa \\
        --option resolution=1024x768
    python jobs/ingest.py --dataset custom --root /data/mine/index.csv --storage /data/dgqa \\
        --option path_column=file --option score_column=mos --num-cpus 8
    python jobs/ingest.py --dataset kadid10k --root dgqa_output/synth/kadid --storage /data/dgqa
    ray job submit --working-dir . -- python jobs/ingest.py --dataset kadid10k \\
        --root s3://raw/kadid10k --storage s3://lake/dgqa

S3 (AWS or any S3-compatible store): credentials from the standard AWS chain (env vars,
~/.aws profile, instance/pod role); endpoint override for other stores in DGQA_S3_ENDPOINT_URL
(or AWS_ENDPOINT_URL), e.g. ``DGQA_S3_ENDPOINT_URL=http://127.0.0.1:8333``. On a cluster every
node needs the same settings (``ray job submit --runtime-env-json`` can pass the non-secret ones).

Exit status: 0 ingested or already ingested; 2 bad input (a flag, a URI carrying credentials,
a missing root, a broken layout or index: the message names the file and row), found before Ray
starts; 1 the ingestion itself failed (too many bad images: the message names the report that
lists them). No message ever shows a credential.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import dgqa_ray  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a bare checkout, e.g. a `ray job submit --working-dir .` without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _option(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option: expected KEY=VALUE, got {text!r}")
    # YAML scalars: 8 -> int, true -> bool, [1, 2] -> list, 1024x768 stays a string.
    return key.strip(), yaml.safe_load(value)


def get_args_parser() -> argparse.ArgumentParser:
    from dgqa_ray.config import add_verbose_argument
    from dgqa_ray.data.adapters import ADAPTERS
    from dgqa_ray.data.shards import DEFAULT_SHARD_SIZE_MB

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", required=True, choices=sorted(ADAPTERS), help="which adapter reads --root"
    )
    parser.add_argument(
        "--root",
        required=True,
        help="the dataset as published: a local folder or s3:// URI (custom: the table file)",
    )
    parser.add_argument(
        "--storage",
        required=True,
        help="where shards go: a local folder or s3://bucket/prefix; the dataset lands in "
        "<storage>/<dataset>/",
    )
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an adapter option, repeatable (e.g. resolution=1024x768 for koniq10k) "
        "(default: none)",
    )
    parser.add_argument(
        "--shard-size-mb",
        type=float,
        default=DEFAULT_SHARD_SIZE_MB,
        help="target shard size in MB: large, because object stores and Ray Data are slow with "
        "many small files (default: %(default)g)",
    )
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="fail when more than this share of images cannot be decoded (default: %(default)g)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=64.0,
        help="skip (as bad) images with more pixels than this, in millions (default: %(default)g)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="ingest again even if the same source was already ingested (default: off)",
    )
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        help="shard tasks at once; without a cluster (no RAY_ADDRESS) also the CPUs of the "
        "local Ray instance (default: all CPUs)",
    )
    add_verbose_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.shard_size_mb <= 0:
        parser.error(f"--shard-size-mb: expected > 0, got {args.shard_size_mb}")
    if not 0.0 <= args.max_bad_fraction <= 1.0:
        parser.error(f"--max-bad-fraction: expected a share in [0, 1], got {args.max_bad_fraction}")
    if args.max_megapixels <= 0:
        parser.error(f"--max-megapixels: expected > 0, got {args.max_megapixels}")
    if args.num_cpus is not None and args.num_cpus < 1:
        parser.error(f"--num-cpus: expected a positive integer, got {args.num_cpus}")

    from dgqa_ray.ray_session import configure_console, init_ray

    configure_console(args.verbose)

    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.errors import DatasetError
    from dgqa_ray.data.ingest import IngestionError, ingest
    from dgqa_ray.data.shards import IngestionInterrupted
    from dgqa_ray.user_input import UserInputError, check_uri, redact

    try:
        check_uri(args.root, "--root")
        check_uri(args.storage, "--storage")
        adapter = open_adapter(args.dataset, args.root, **dict(args.option))
        # Read and check the index before any Ray start: a bad layout fails in a second.
        rows = len(adapter.index())
    except (UserInputError, DatasetError, OSError, ValueError, TypeError) as e:
        print(f"ingest: error: {redact(e)}", file=sys.stderr)
        return 2
    print(f"{adapter.name}: index of {rows} images checked at {adapter.root}", flush=True)

    init_ray(args.num_cpus)  # joins RAY_ADDRESS (ray job submit) or a running instance
    try:
        result = ingest(
            adapter,
            args.storage,
            shard_size_mb=args.shard_size_mb,
            max_bad_fraction=args.max_bad_fraction,
            force=args.force,
            num_cpus=args.num_cpus,
            max_megapixels=args.max_megapixels,
        )
    except (DatasetError, IngestionError, IngestionInterrupted, OSError, ValueError) as e:
        print(f"ingest: error: {redact(e)}", file=sys.stderr)
        return 1
    print(f"dataset: {result.dataset_dir}")
    print(f"manifest: {result.dataset_dir}/manifest.json ({result.row_count} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
