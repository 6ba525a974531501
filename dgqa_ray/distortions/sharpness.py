"""KADID sharpness family: 24 high sharpen.

The reference ``imsharpenHi`` calls MATLAB ``imsharpen`` (unsharp masking of the Lab lightness
only, so colours do not fringe) with radius 3 and then clips the RGB result to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from ._ops import (
    gaussian_filter,
    gaussian_filter_batch,
    lab2rgb,
    lab2rgb_batch,
    rgb2lab,
    rgb2lab_batch,
    truncate,
)
from ._spec import Implementation

# imsharpenHi's default radius: the standard deviation of the Gaussian low-pass, whose
# 2*ceil(2*3)+1 = 13 tap kernel is fspecial('gaussian', [13 13], 3) (separable, sums to 1).
SHARPEN_RADIUS = 3.0


def high_sharpen(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imsharpen(I, 'Radius', 3, 'Amount', amount)`` then ``truncate``.

    In Lab: L' = L + amount * (L - gauss(L)) with replicate padding; a and b unchanged.
    """
    del rng
    lab = rgb2lab(img)  # (H, W, 3), L in [0, 100]
    lightness = lab[..., 0]
    lab[..., 0] = lightness + amount * (lightness - gaussian_filter(lightness, SHARPEN_RADIUS))
    return truncate(lab2rgb(lab))


def high_sharpen_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``high_sharpen`` for a (B, 3, H, W) batch."""
    del gen
    lab = rgb2lab_batch(x)  # (B, 3, H, W)
    lightness = lab[:, :1]
    sharp = lightness + amount * (lightness - gaussian_filter_batch(lightness, SHARPEN_RADIUS))
    return truncate(lab2rgb_batch(torch.cat([sharp, lab[:, 1:]], dim=1)))


IMPLEMENTATIONS: dict[str, Implementation] = {
    "high_sharpen": Implementation(single=high_sharpen, batch=high_sharpen_batch, stochastic=False),
}
