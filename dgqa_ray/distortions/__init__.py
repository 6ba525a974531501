"""The 25 KADID distortion types x 5 levels, faithful to the reference MATLAB generator.

>>> from dgqa_ray import distortions
>>> out = distortions.apply(image, "gaussian_blur", level=3)         # (H, W, 3) uint8
>>> outs = distortions.apply_batch(batch, 10, level=5, seed=0)       # (B, 3, H, W) uint8

See ``docs/distortions.md`` for every type, its parameters and its differences from the
reference.
"""

from .registry import (
    DISTORTIONS,
    NUM_LEVELS,
    NUM_TYPES,
    Distortion,
    apply,
    apply_batch,
    get_distortion,
)

__all__ = [
    "DISTORTIONS",
    "NUM_LEVELS",
    "NUM_TYPES",
    "Distortion",
    "apply",
    "apply_batch",
    "get_distortion",
]
