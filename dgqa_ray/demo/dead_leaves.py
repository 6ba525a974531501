"""Procedural reference images: the dead-leaves model, a standard test chart of camera IQA.

    palette = palette_from_photos([photo_a, photo_b])                  # natural colours
    refs = dead_leaves_references(64, (96, 128), seed=0, palette=palette)
    name, image = refs[0]                                              # "deadleaves_0000", (96, 128, 3) uint8

A dead-leaves image is made of occluding disks dropped one after another until the canvas is
covered (Lee, Mumford & Huang 2001); with radii drawn from a density proportional to r^-3 the
result is scale-invariant and has the power spectrum and edge statistics of natural images,
which is why ISO 19567-2 and the IEEE P1858 camera standard use it to measure texture loss. It
gives the embedded default unlimited content that no photo shares: the packages this project
may read ship only five natural colour photos.

Details that matter for distortion classification:

- **Colours** are drawn from the pixels of real photos (``palette_from_photos``), so hue and
  saturation statistics are those of photos, not of uniform RGB noise; the palette comes from
  the training pools' photos only, never from the target's.
- **Shading**: each leaf gets a gentle linear brightness gradient, so flat regions are not all
  perfectly flat (a perfectly flat disk would look like the colour-block distortion, #23).
- **Anti-aliasing**: the image is drawn at ``supersample`` x the size and downsampled with a box
  filter, so edges are sharp but not jagged (jagged edges would look like pixelation, #21).
- Every image is min-max stretched to the full 0-255 range, as every embedded reference is
  (``embedded.stretch``).

Nothing here imports Ray or torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .photos import DEAD_LEAVES_PREFIX as NAME_PREFIX
from .photos import ReferenceTile, is_dead_leaves_name, stretch

PALETTE_SIZE = 4096
"""Colours kept from the photos' pixels: plenty for variety, cheap to draw from."""


def palette_from_photos(photos: Sequence[np.ndarray], seed: int = 0) -> np.ndarray:
    """(PALETTE_SIZE, 3) float32 RGB colours drawn uniformly from the photos' pixels."""
    if not photos:
        raise ValueError("photos: expected at least one (H, W, 3) uint8 photo for the palette")
    pixels = np.concatenate([np.asarray(p).reshape(-1, 3) for p in photos])
    rng = np.random.default_rng([seed, 3])
    return pixels[rng.integers(len(pixels), size=PALETTE_SIZE)].astype(np.float32)


def dead_leaves_image(
    height: int,
    width: int,
    rng: np.random.Generator,
    palette: np.ndarray,
    *,
    min_radius: float = 1.5,
    max_radius: float | None = None,
    supersample: int = 2,
    shading: float = 0.3,
    coverage: float = 0.999,
) -> np.ndarray:
    """One dead-leaves image, (height, width, 3) uint8, stretched to 0-255.

    Args:
        rng: the draws (radii, positions, colours, shading).
        palette: (N, 3) RGB colours in 0-255 to draw leaf colours from.
        min_radius, max_radius: radius range in output pixels; None: half the longer side.
        supersample: drawn at this many times the size, then box-downsampled.
        shading: standard deviation of each leaf's brightness change across its radius.
        coverage: stop once this share of the canvas is covered (or after 20,000 leaves).
    """
    if height < 2 or width < 2:
        raise ValueError(f"size: expected at least 2 x 2 pixels, got {height} x {width}")
    s = int(supersample)
    big_h, big_w = height * s, width * s
    r_min = float(min_radius) * s
    r_max = float(max_radius if max_radius is not None else max(height, width) / 2) * s
    if not 0 < r_min < r_max:
        raise ValueError(
            f"radius: expected 0 < min_radius < max_radius, got {min_radius}, {max_radius}"
        )
    canvas = np.zeros((big_h, big_w, 3), np.float32)
    covered = np.zeros((big_h, big_w), bool)
    # Inverse CDF of p(r) ~ r^-3 on [r_min, r_max].
    a, b = r_min**-2.0, r_max**-2.0
    for _ in range(20_000):
        if covered.mean() >= coverage:
            break
        r = (a - rng.random() * (a - b)) ** -0.5
        cy, cx = rng.uniform(-r, big_h + r), rng.uniform(-r, big_w + r)
        colour = palette[rng.integers(len(palette))]
        grad = rng.normal(0.0, shading, 2) / max(r, 1.0)
        y0, y1 = max(0, int(cy - r)), min(big_h, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(big_w, int(cx + r) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        new = inside & ~covered[y0:y1, x0:x1]  # leaves already down occlude the new one
        if not new.any():
            continue
        shade = 1.0 + grad[0] * (yy - cy) + grad[1] * (xx - cx)  # (h, w)
        values = np.clip(colour[None, None, :] * shade[..., None], 0.0, 255.0)
        canvas[y0:y1, x0:x1][new] = values[new]
        covered[y0:y1, x0:x1] |= new
    image = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    small = np.asarray(image.resize((width, height), Image.BOX))
    return stretch(small)


def dead_leaves_references(
    count: int, tile: tuple[int, int], seed: int, palette: np.ndarray, start: int = 0
) -> list[ReferenceTile]:
    """``count`` dead-leaves references of ``tile`` (height, width), named ``deadleaves_NNNN``
    with NNNN = ``start``, ``start + 1``, ...

    Image i depends only on (seed, i), so a name always means the same pixels for a seed."""
    if count < 0:
        raise ValueError(f"count: expected >= 0, got {count!r}")
    h, w = tile
    return [
        ReferenceTile(
            f"{NAME_PREFIX}_{i:04d}",
            dead_leaves_image(h, w, np.random.default_rng([seed, 4, i]), palette),
        )
        for i in range(start, start + count)
    ]


__all__ = [
    "NAME_PREFIX",
    "dead_leaves_image",
    "dead_leaves_references",
    "is_dead_leaves_name",
    "palette_from_photos",
]
