"""The 25 KADID-10k / KADIS-700k distortion types: table, lookup and the public apply functions.

The table (ids, names, families, level parameters) is ``kadid_distortions.csv``, a copy of the
reference generator's settings. Each family module (``blur.py``, ``color.py``, ...) provides the
math in an ``IMPLEMENTATIONS`` dict keyed by type name.

Every call follows MATLAB ``imdist_generator``: the uint8 input is min-max normalised to [0, 1]
(``mapmm``), distorted, min-max normalised again and written back as uint8.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from . import (
    blur,
    brightness,
    color,
    compression,
    contrast,
    noise,
    sharpness,
    spatial,
)
from ._ops import (
    mapmm,
    mapmm_batch,
    to_uint8,
    to_uint8_batch,
    to_unit_float,
    to_unit_float_batch,
    torch_generator,
)
from ._spec import Implementation

NUM_TYPES = 25
NUM_LEVELS = 5


@dataclass(frozen=True)
class Distortion:
    """One KADID distortion type: its id (1..25), name, family and the parameter per level."""

    dist_type: int
    name: str
    family: str
    param_name: str
    levels: tuple[float, float, float, float, float]  # level 1 (mildest) .. level 5
    stochastic: bool
    implementation: Implementation

    @property
    def has_batch_kernel(self) -> bool:
        """True when the batched path is torch array math (else per image on the CPU)."""
        return self.implementation.batch is not None

    def param(self, level: int) -> float:
        return self.levels[level - 1]


def _load_table() -> list[Distortion]:
    impls: dict[str, Implementation] = {}
    for module in (blur, color, compression, noise, brightness, spatial, sharpness, contrast):
        impls.update(module.IMPLEMENTATIONS)
    rows = []
    text = resources.files(__package__).joinpath("kadid_distortions.csv").read_text()
    for row in csv.DictReader(text.splitlines()):
        impl = impls[row["name"]]
        rows.append(
            Distortion(
                dist_type=int(row["dist_type"]),
                name=row["name"],
                family=row["family"],
                param_name=row["param_name"],
                levels=tuple(float(row[f"level{i}"]) for i in range(1, NUM_LEVELS + 1)),
                stochastic=impl.stochastic,
                implementation=impl,
            )
        )
    assert [d.dist_type for d in rows] == list(range(1, NUM_TYPES + 1))
    return rows


DISTORTIONS: tuple[Distortion, ...] = tuple(_load_table())
_BY_NAME = {d.name: d for d in DISTORTIONS}


def get_distortion(dist_type: int | str) -> Distortion:
    """Look a type up by KADID id (1..25) or by name (``"gaussian_blur"``)."""
    if isinstance(dist_type, str) and not dist_type.strip().isdigit():
        key = dist_type.strip().lower()
        if key in _BY_NAME:
            return _BY_NAME[key]
        raise ValueError(
            f"dist_type: unknown distortion name {dist_type!r}; allowed names: "
            + ", ".join(_BY_NAME)
        )
    if isinstance(dist_type, bool) or not isinstance(dist_type, (int, np.integer, str)):
        raise ValueError(
            f"dist_type: expected a KADID id 1..{NUM_TYPES} or a name, got {dist_type!r}"
        )
    idx = int(dist_type)
    if not 1 <= idx <= NUM_TYPES:
        raise ValueError(f"dist_type: expected a KADID id in 1..{NUM_TYPES}, got {dist_type!r}")
    return DISTORTIONS[idx - 1]


def _check_level(level) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise ValueError(f"level: expected an integer in 1..{NUM_LEVELS}, got {level!r}")
    if not 1 <= int(level) <= NUM_LEVELS:
        raise ValueError(f"level: expected an integer in 1..{NUM_LEVELS}, got {level!r}")
    return int(level)


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image: expected dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image: expected at least 2x2 pixels, got {image.shape[:2]}")
    return image


def apply(image: np.ndarray, dist_type: int | str, level: int, seed: int | None = None):
    """Distort one image as the reference generator does.

    Args:
        image: (H, W, 3) uint8 RGB.
        dist_type: KADID id 1..25 or its name (``kadid_distortions.csv``).
        level: 1 (mildest) .. 5.
        seed: seeds the stochastic types; the same seed gives the same output. None draws
            fresh randomness.

    Returns:
        (H, W, 3) uint8.
    """
    dist = get_distortion(dist_type)
    level = _check_level(level)
    image = _check_image(image)
    rng = np.random.default_rng(seed)
    x = to_unit_float(image)
    y = dist.implementation.single(x, dist.param(level), rng)
    assert y.shape == x.shape, (dist.name, y.shape, x.shape)
    return to_uint8(mapmm(y))


def apply_batch(
    images: torch.Tensor, dist_type: int | str, level: int, seed: int | None = None
) -> torch.Tensor:
    """Distort a batch of images with one type and level, on the images' device.

    Args:
        images: (B, 3, H, W) uint8 tensor, CPU or CUDA.
        dist_type, level, seed: as for ``apply``. Each image of the batch gets its own random
            draws (its own motion-blur angle, noise field, ...).

    Returns:
        (B, 3, H, W) uint8 tensor on the same device. Types without a torch kernel (JPEG,
        JPEG2000, colour quantisation, denoise) are computed image by image on the CPU.
    """
    dist = get_distortion(dist_type)
    level = _check_level(level)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images: expected dtype torch.uint8, got {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        return images.clone()
    param = dist.param(level)
    if dist.implementation.batch is None:
        return _apply_per_image(images, dist, level, seed)
    x = to_unit_float_batch(images)
    gen = torch_generator(seed, images.device)
    y = dist.implementation.batch(x, param, gen)
    assert y.shape == x.shape, (dist.name, y.shape, x.shape)
    return to_uint8_batch(mapmm_batch(y))


def _apply_per_image(images: torch.Tensor, dist: Distortion, level: int, seed: int | None):
    host = images.permute(0, 2, 3, 1).cpu().numpy()
    base = np.random.SeedSequence(seed)
    seeds = base.spawn(len(host))
    out = np.stack(
        [
            apply(img, dist.dist_type, level, seed=int(s.generate_state(1)[0]))
            for img, s in zip(host, seeds, strict=True)
        ]
    )
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)
