"""Render the 25 x 5 distortion grid (one row per KADID type, levels 1..5 across) as a PNG.

Usage:
    python jobs/distortion_grid.py                                  # docs/images/distortion_grid.png
    python jobs/distortion_grid.py --photo chelsea --tile 160 --out grid.png

The source is a photo that ships with scikit-image, so the grid needs no download.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")


def render_grid(photo: str = "coffee", tile: int = 128, seed: int = 0) -> Image.Image:
    """One row per type (label on the left), one column per level; every cell ``tile`` px."""
    from skimage import data
    from skimage.transform import resize

    from dgqa_ray.distortions import DISTORTIONS, apply

    src = getattr(data, photo)()
    side = min(src.shape[:2])
    top, left = (src.shape[0] - side) // 2, (src.shape[1] - side) // 2
    square = src[top : top + side, left : left + side]
    ref = np.clip(
        resize(square, (tile, tile), anti_aliasing=True, preserve_range=True).round(), 0, 255
    )
    ref = ref.astype(np.uint8)
    label_w, head_h, gap = 190, 22, 2
    cols, rows = 5, len(DISTORTIONS)
    canvas = Image.new(
        "RGB", (label_w + cols * (tile + gap), head_h + rows * (tile + gap)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for level in range(1, 6):
        draw.text(
            (label_w + (level - 1) * (tile + gap) + tile // 2 - 20, 5),
            f"level {level}",
            fill="black",
        )
    for r, dist in enumerate(DISTORTIONS):
        y = head_h + r * (tile + gap)
        draw.text((4, y + tile // 2 - 12), f"{dist.dist_type:2d} {dist.name}", fill="black")
        draw.text((4, y + tile // 2 + 2), f"   {dist.param_name}", fill="gray")
        for level in range(1, 6):
            out = apply(ref, dist.dist_type, level, seed=seed)
            canvas.paste(Image.fromarray(out), (label_w + (level - 1) * (tile + gap), y))
    return canvas


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--photo", choices=PHOTOS, default="coffee", help="scikit-image photo (default: coffee)"
    )
    p.add_argument("--tile", type=int, default=128, help="cell size in pixels (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic types (default: 0)")
    p.add_argument(
        "--out", default="docs/images/distortion_grid.png", help="PNG path (default: %(default)s)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.tile < 64:
        get_args_parser().error(
            f"--tile: expected at least 64 pixels (patch types need room), got {args.tile}"
        )
    grid = render_grid(args.photo, args.tile, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    print(f"wrote {out} ({grid.width}x{grid.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
