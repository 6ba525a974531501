"""Synthesize a KADID-10k-style or KADIS-700k-style dataset from pristine reference images.

With no arguments it builds the embedded default: a KADID-style set from the 21 embedded tiles
(256x192 crops of 6 of scikit-image's colour photos, see ``dgqa_ray/demo/photos.py``) x 25
types x 5 levels = 2,625 distorted images plus the 21 pristine tiles, in
``./dgqa_output/synth/kadid``; about 1.5 minutes on 2 CPU cores (denoise, type 15, is the
slowest type). A rerun skips the references already done, so an interrupted run resumes.

Usage:
    python jobs/synthesize.py                                   # the embedded default
    python jobs/synthesize.py --max-refs 6 --types 1,10,white_noise   # a quick look
    python jobs/synthesize.py --style kadis                     # random type per reference
    python jobs/synthesize.py --style kadis --refs /data/kadis700k/ref_imgs \\
        --kadis-table /data/kadis700k/kadis700k_ref_imgs.csv --out /data/kadis700k
    python jobs/synthesize.py --refs /data/my_refs --out /data/my_kadid --seed 1 --num-cpus 8
    ray job submit --working-dir . -- python jobs/synthesize.py --out /shared/synth/kadid

On a Ray cluster, ``--refs`` and ``--out`` must be folders every node sees (a shared
filesystem); ``ray job submit`` runs this script on the head node, which connects to the
cluster and spreads references over its CPUs.

Layout and index files: see ``dgqa_ray/data/synthesis.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import dgqa_ray  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a bare checkout, e.g. a `ray job submit --working-dir .` without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _types(text: str) -> list[int]:
    from dgqa_ray.distortions import get_distortion

    try:
        return [get_distortion(t.strip()).dist_type for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--style",
        choices=("kadid", "kadis"),
        default="kadid",
        help="kadid: every reference x every type x 5 levels; kadis: one type per reference "
        "x 5 levels (default: %(default)s)",
    )
    parser.add_argument(
        "--refs",
        default=None,
        help="folder of reference images (png/jpg/bmp/tif) (default: the embedded tiles)",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: ./dgqa_output/synth/<style>)"
    )
    parser.add_argument(
        "--kadis-table",
        default=None,
        help="kadis700k_ref_imgs.csv-style table (ref_im,dist_type_1,dist_type_2) giving each "
        "reference's type; only with --style kadis (default: a seeded random type each)",
    )
    parser.add_argument(
        "--types",
        type=_types,
        default=None,
        help="comma-separated KADID ids or names, e.g. 1,10,gaussian_noise (default: all 25; "
        "with --style kadis, the pool random types are drawn from)",
    )
    parser.add_argument(
        "--max-refs",
        type=int,
        default=None,
        help="use only the first N references (embedded tiles: one per photo first, then "
        "round-robin) (default: all); not with --kadis-table",
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        help="references processed at once (default: every CPU of the Ray cluster)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _references(args: argparse.Namespace):
    from dgqa_ray.data.synthesis import list_references
    from dgqa_ray.demo.photos import embedded_references

    if args.refs is None:
        return embedded_references(max_tiles=args.max_refs)
    if args.max_refs is None:  # every reference (or the table's); listed here to check the folder
        list_references(args.refs)
        return args.refs
    refs = list_references(args.refs)[: args.max_refs]
    return [(ref.name, ref.load()) for ref in refs]  # (name, (H, W, 3) uint8)


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.kadis_table is not None and args.style != "kadis":
        parser.error("--kadis-table: only with --style kadis")
    if args.kadis_table is not None and args.types is not None:
        parser.error("--types: not allowed with --kadis-table (the table gives each type)")
    if args.max_refs is not None and args.kadis_table is not None:
        parser.error("--max-refs: not allowed with --kadis-table (the table picks the references)")
    if args.max_refs is not None and args.max_refs < 1:
        parser.error(f"--max-refs: expected a positive integer, got {args.max_refs}")

    from dgqa_ray.data.synthesis import SynthesisError, synthesize_kadid, synthesize_kadis
    from dgqa_ray.user_input import UserInputError, check_uri, redact

    out = Path(args.out) if args.out else Path("dgqa_output") / "synth" / args.style
    common = dict(seed=args.seed, num_cpus=args.num_cpus, progress=not args.quiet)
    try:  # the references are listed (and checked) before Ray starts
        if args.out is not None and "://" in check_uri(args.out, "--out"):
            raise UserInputError(f"--out: expected a local folder, got {args.out!r}")
        refs = _references(args)
    except (UserInputError, OSError, ValueError, SynthesisError) as e:
        print(f"synthesize: error: {redact(e)}", file=sys.stderr)
        return 2
    try:
        if args.style == "kadid":
            result = synthesize_kadid(refs, out, types=args.types, **common)
        else:
            table = args.kadis_table
            result = synthesize_kadis(refs, out, table=table, types=args.types, **common)
    except (OSError, ValueError, SynthesisError) as e:  # the message names the input
        print(f"synthesize: error: {redact(e)}", file=sys.stderr)
        return 1

    print(
        f"{result.style}-style dataset: {result.references} references, {result.images} image "
        f"files ({result.references_skipped} references were already done, "
        f"{result.images_written} files written in {result.seconds:.1f} s, "
        f"{result.images_per_second:.1f} images/s)"
    )
    print(f"dataset: {result.out_dir}")
    print(f"index:   {result.index_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
