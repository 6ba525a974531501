"""Benchmarks, each printing a table of ratios against a baseline measured in the same run.

Usage:
    python jobs/benchmark.py distortions                    # 25 types, 256x256 and 512x384
    python jobs/benchmark.py distortions --threads 2 --types 1,2,3
    python jobs/benchmark.py data                           # Ray Data training view vs DataLoader
    python jobs/benchmark.py training                       # Ray Train + Ray Data vs plain torch
    python jobs/benchmark.py search                         # tau sweep: parallel vs serial trials
    python jobs/benchmark.py ablation                       # what limits the embedded default
    python jobs/benchmark.py cpu-bf16                       # float32 vs bf16 training on this CPU
    python jobs/benchmark.py inference                      # actor-pool predictor vs plain torch
    ray job submit --working-dir . -- python jobs/benchmark.py distortions

Results go to ``dgqa_output/benchmarks/<mode>.csv`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys


def _types(text: str) -> list[int]:
    from dgqa_ray.distortions import get_distortion

    try:
        return [get_distortion(t.strip()).dist_type for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(tuple(int(v) for v in s.lower().split("x")) for s in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--sizes: expected WxH[,WxH...], got {text!r}") from e


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("distortions", help="images/s per type: single-image vs batched torch path")
    d.add_argument(
        "--sizes",
        type=_sizes,
        default=((256, 256), (512, 384)),
        help="WxH list (default: 256x256,512x384)",
    )
    d.add_argument(
        "--batch-size", type=int, default=16, help="images per batched call (default: 16)"
    )
    d.add_argument(
        "--repeats", type=int, default=2, help="timed passes over the 5 levels (default: 2)"
    )
    d.add_argument(
        "--threads", type=int, default=1, help="CPU threads (default: 1, the per-core figure)"
    )
    d.add_argument(
        "--types", type=_types, default=None, help="comma-separated ids or names (default: all 25)"
    )
    d.add_argument(
        "--out",
        default="dgqa_output/benchmarks/distortions.csv",
        help="CSV path (default: %(default)s)",
    )
    t = sub.add_parser("data", help="Ray Data training view from S3 shards vs a torch DataLoader")
    t.add_argument("--images", type=int, default=2048, help="512x384 JPEGs (default: 2048)")
    t.add_argument("--epochs", type=int, default=2, help="timed epochs (default: 2)")
    t.add_argument("--crop", type=int, default=224, help="crop side (default: 224)")
    t.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    t.add_argument("--num-cpus", type=int, default=None, help="cores (default: all)")
    t.add_argument(
        "--out", default="dgqa_output/benchmarks/data.csv", help="CSV path (default: %(default)s)"
    )
    sub.add_parser(
        "search",
        help="the same tau sweep with trials in parallel vs one at a time",
        add_help=False,
    )
    sub.add_parser(
        "ablation",
        help="the demo preset with one setting changed per row (classifier, selection, regressors)",
        add_help=False,
    )
    sub.add_parser(
        "cpu-bf16",
        help="CPU training img/s: float32 vs bf16 autocast + channels_last (model.cpu_bf16)",
        add_help=False,
    )
    sub.add_parser(
        "inference",
        help="scoring img/s: the Ray Data actor-pool predictor vs a plain torch loop",
        add_help=False,
    )
    sub.add_parser(
        "training",
        help="regressor training img/s: Ray Train + Ray Data vs a plain torch loop",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args, rest = get_args_parser().parse_known_args(argv)
    if args.mode == "distortions":
        if rest:
            get_args_parser().error(f"unrecognized arguments: {' '.join(rest)}")
        from dgqa_ray.benchmarks.distortions import run_distortion_benchmark

        run_distortion_benchmark(
            sizes=args.sizes,
            batch_size=args.batch_size,
            repeats=args.repeats,
            threads=args.threads,
            types=args.types,
            out_csv=args.out,
        )
        return 0
    if args.mode == "search":
        from dgqa_ray.benchmarks.search import main as search_main

        return search_main(rest)
    if args.mode == "ablation":
        from dgqa_ray.benchmarks.ablation import main as ablation_main

        return ablation_main(rest)
    if args.mode == "cpu-bf16":
        from dgqa_ray.benchmarks.cpu_bf16 import main as cpu_bf16_main

        return cpu_bf16_main(rest)
    if args.mode == "inference":
        from dgqa_ray.benchmarks.inference import main as inference_main

        return inference_main(rest)
    if args.mode == "training":
        from dgqa_ray.benchmarks.training import main as training_main

        return training_main(rest)
    if rest:
        get_args_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    from dgqa_ray.benchmarks.data import run_data_benchmark, write_rows_csv

    rows = run_data_benchmark(
        args.images,
        crop=args.crop,
        batch_size=args.batch_size,
        epochs=args.epochs,
        num_cpus=args.num_cpus,
    )
    print(f"wrote {write_rows_csv(rows, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
