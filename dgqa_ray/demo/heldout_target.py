"""A check target nothing in the project was tuned on: photos no pool uses, degraded by other code.

    table = build_heldout_target("dgqa_output/heldout")     # -> dgqa_output/heldout/heldout.csv
    expected = expected_types(read_heldout_truth(table))     # {"pil_gaussian_blur": (1, 2, 3), ...}

The embedded default's target is made by this project's own generator on two of the photos that
the packages ship. That says nothing about a target the generator did not make. This one is
built the other way round:

- **Photos**: scikit-learn's two sample photos (``china.jpg``, ``flower.jpg``) and
  matplotlib's ``grace_hopper.jpg``, which no pool of the embedded default uses (they are kept
  out of every pool for this check), cut into tiles of ``tile`` pixels; the tiles are *not*
  stretched (a real photo is not).
- **Degradations by other libraries** (Pillow's filters and enhancers, scikit-image's noise),
  with their own parameters, not the KADID levels: Gaussian blur (``ImageFilter.GaussianBlur``),
  JPEG (Pillow's encoder at other qualities, 4:2:0), additive Gaussian noise
  (``skimage.util.random_noise``), contrast reduction (``ImageEnhance.Contrast``) and darkening
  (``ImageEnhance.Brightness``). Each image carries 1..``max_per_image`` of them at five
  strengths, applied in sequence, drawn as the embedded target draws its mixtures.
- **Scores**: MS-SSIM against the pristine tile (``proxy_scores``), the proxy the source is
  labelled with: a full-reference metric, not a subjective score.

``EXPECTED_TYPES`` maps each degradation to the KADID types that describe it (a Pillow blur is
a Gaussian blur, #1, but a classifier that calls it lens blur, #2, has not erred much): a
degradation counts as found when the selection holds one of its types.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter

from dgqa_ray.data.writers import LocalFolderWriter

from .proxy_scores import PROXY_COLUMN, proxy_scores

TABLE = "heldout.csv"
INFO = "heldout.json"
DATASET_NAME = "heldout_target"

LEVELS: dict[str, tuple[float, ...]] = {
    "pil_gaussian_blur": (0.6, 1.0, 1.6, 2.4, 3.5),  # radius (sigma) in pixels
    "pil_jpeg": (45, 30, 18, 10, 5),  # quality
    "skimage_gaussian_noise": (0.0008, 0.0016, 0.003, 0.006, 0.012),  # variance on [0, 1]
    "pil_contrast": (0.85, 0.7, 0.6, 0.5, 0.4),  # ImageEnhance.Contrast factor
    "pil_darken": (0.9, 0.8, 0.7, 0.6, 0.5),  # ImageEnhance.Brightness factor
}
EXPECTED_TYPES: dict[str, tuple[int, ...]] = {
    "pil_gaussian_blur": (1, 2, 3),
    "pil_jpeg": (9, 10),
    "skimage_gaussian_noise": (11, 12, 14),
    "pil_contrast": (25,),
    "pil_darken": (17, 18),
}
"""The KADID types that describe each degradation (blur of any kind, either codec, ...)."""


def heldout_photos() -> dict[str, np.ndarray]:
    """The held-out photos, (H, W, 3) uint8, by name; read from the packages' own files."""
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images

    photos = {}
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images, strict=True):
        photos[f"sklearn_{Path(name).stem}"] = np.asarray(image, dtype=np.uint8)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        photos["matplotlib_grace_hopper"] = np.asarray(Image.open(fh).convert("RGB"))
    return photos


def _tiles(photos: dict[str, np.ndarray], tile: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    th, tw = tile
    out = []
    for name, photo in photos.items():
        h, w = photo.shape[:2]
        rows, cols = h // th, w // tw
        top, left = (h - rows * th) // 2, (w - cols * tw) // 2
        for r in range(rows):
            for c in range(cols):
                y, x = top + r * th, left + c * tw
                out.append((f"{name}_t{r * cols + c:02d}", np.array(photo[y : y + th, x : x + tw])))
    return out


def degrade(image: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` (H, W, 3) uint8 degraded by ``kind`` at ``level`` (1..5), by other libraries."""
    if kind not in LEVELS:
        raise ValueError(f"kind: unknown degradation {kind!r}; known: {', '.join(LEVELS)}")
    value = LEVELS[kind][level - 1]
    pil = Image.fromarray(image)
    if kind == "pil_gaussian_blur":
        return np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=value)))
    if kind == "pil_jpeg":
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(value), subsampling=2)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if kind == "skimage_gaussian_noise":
        from skimage.util import random_noise

        noisy = random_noise(image, mode="gaussian", var=value, rng=int(rng.integers(2**31)))
        return np.round(noisy * 255).astype(np.uint8)
    if kind == "pil_contrast":
        return np.asarray(ImageEnhance.Contrast(pil).enhance(value))
    return np.asarray(ImageEnhance.Brightness(pil).enhance(value))  # pil_darken


def build_heldout_target(
    out_dir: str | Path,
    *,
    tile: tuple[int, int] = (96, 128),
    n_images: int = 100,
    kinds: Sequence[str] = tuple(LEVELS),
    max_per_image: int = 2,
    seed: int = 0,
) -> str:
    """Write the held-out target (images and ``heldout.csv``, the table written last) under
    ``out_dir``; returns the table's path. A finished one with the same settings is reused."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in LEVELS]
    if unknown or not kinds:
        raise ValueError(f"kinds: expected some of {', '.join(LEVELS)}, got {kinds}")
    if not 1 <= max_per_image <= len(kinds):
        raise ValueError(f"max_per_image: expected 1..{len(kinds)}, got {max_per_image}")
    folder = Path(out_dir).resolve()
    settings = {
        "tile": list(tile),
        "n_images": n_images,
        "kinds": kinds,
        "max_per_image": max_per_image,
        "seed": seed,
        "levels": {k: list(LEVELS[k]) for k in kinds},
    }
    info, table = folder / INFO, folder / TABLE
    if info.is_file() and table.is_file() and json.loads(info.read_text()) == settings:
        return str(table)
    tiles = _tiles(heldout_photos(), tile)
    rng = np.random.default_rng([seed, 9])
    writer = LocalFolderWriter(folder)
    rows, images, references = [], [], []
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    for j in range(n_images):
        ref_id, pristine = tiles[j % len(tiles)]
        first = order[j % len(order)]
        count = int(rng.integers(1, max_per_image + 1))
        rest = [k for k in kinds if k != first]
        chosen = [first, *(str(k) for k in rng.choice(rest, size=count - 1, replace=False))]
        applied = [chosen[i] for i in rng.permutation(count)]
        levels = [int(rng.integers(1, 6)) for _ in applied]
        pixels = pristine
        for kind, level in zip(applied, levels, strict=True):
            pixels = degrade(pixels, kind, level, rng)
        image_id = f"{ref_id}_h{j // len(tiles):02d}"
        writer.write_image(f"images/{image_id}.png", pixels, "png")
        images.append(pixels)
        references.append(pristine)
        rows.append(
            {
                "path": f"images/{image_id}.png",
                "image_id": image_id,
                "ref_id": ref_id,
                "degradations": ";".join(applied),
                "levels": ";".join(map(str, levels)),
            }
        )
    frame = pd.DataFrame(rows)
    frame.insert(3, PROXY_COLUMN, np.round(proxy_scores(np.stack(images), np.stack(references)), 6))
    writer.write_index(TABLE, frame)
    writer.write_text(INFO, json.dumps(settings, indent=2) + "\n")
    return str(table)


def read_heldout_truth(table: str | Path) -> pd.DataFrame:
    """The held-out target's table with ``degradations`` as tuples."""
    frame = pd.read_csv(table, dtype={"image_id": str, "ref_id": str})
    frame["degradations"] = [tuple(str(s).split(";")) for s in frame["degradations"]]
    return frame


def expected_types(truth: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """The degradations present in the table and the KADID types that describe each."""
    present = sorted({k for kinds in truth["degradations"] for k in kinds})
    return {k: EXPECTED_TYPES[k] for k in present}


def heldout_recovery(selected: Sequence[int], truth: pd.DataFrame) -> dict[str, object]:
    """Which degradations a selection found (one of their types selected), which it missed,
    and the selected types that describe none of them."""
    expected = expected_types(truth)
    chosen = {int(t) for t in selected}
    found = sorted(k for k, types in expected.items() if chosen & set(types))
    described = {t for types in expected.values() for t in types}
    return {
        "found": found,
        "missed": sorted(set(expected) - set(found)),
        "extra": sorted(chosen - described),
    }


__all__ = [
    "DATASET_NAME",
    "EXPECTED_TYPES",
    "LEVELS",
    "build_heldout_target",
    "degrade",
    "expected_types",
    "heldout_photos",
    "heldout_recovery",
    "read_heldout_truth",
]
