"""Regenerate the config reference in docs/pipeline.md from the dgqa_ray/config/ package.

Usage:
    python jobs/config_reference.py            # rewrite the generated section
    python jobs/config_reference.py --check    # exit 1 when the docs are stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "pipeline.md"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--doc", default=str(DOC), help="markdown file (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config_reference import update

    args = get_args_parser().parse_args(argv)
    try:
        current = update(args.doc, write=not args.check)
    except (OSError, ValueError) as e:
        print(f"config_reference: error: {e}", file=sys.stderr)
        return 2
    if current:
        print(f"{args.doc}: config reference is current")
        return 0
    if args.check:
        print(f"{args.doc}: config reference is stale; run python jobs/config_reference.py")
        return 1
    print(f"{args.doc}: config reference rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
