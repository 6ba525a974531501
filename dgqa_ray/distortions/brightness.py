"""KADID brightness family: 16 brighten, 17 darken, 18 mean shift.

All three are deterministic tone mappings of the reference generator (``imbrighten``,
``imdarken``, ``immeanshift``). Brighten and darken bend the midpoint of a spline tone curve
(``_ops.curves``); brighten also blends in a copy whose Lab lightness went through the same curve,
which keeps colours from washing out.
"""

from __future__ import annotations

import numpy as np
import torch

from ._ops import (
    curves,
    curves_batch,
    lab2rgb,
    lab2rgb_batch,
    rgb2lab,
    rgb2lab_batch,
    truncate,
)
from ._spec import Implementation

# ---------------------------------------------------------------------------------------------
# 16. brighten (imbrighten)
# ---------------------------------------------------------------------------------------------


def brighten(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imbrighten(I, amount)``: midpoint of the tone curve raised to 0.5 + amount / 2.

    An RGB input always takes the reference's Lab branch (``dolab`` is forced on for 3 channels):
    the result is (2 * curve(RGB) + truncate(lab2rgb(Lab with curve(L / 100) * 100))) / 3.
    """
    del rng  # deterministic
    coef = 0.5 + amount / 2.0
    lab = rgb2lab(img)  # (H, W, 3), L in [0, 100]
    lab[..., 0] = curves(lab[..., 0] / 100.0, coef) * 100.0
    rgb_curve = curves(img, coef)
    return (2.0 * rgb_curve + truncate(lab2rgb(lab))) / 3.0


def brighten_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``brighten`` for a (B, 3, H, W) batch."""
    del gen
    coef = 0.5 + amount / 2.0
    lab = rgb2lab_batch(x)  # (B, 3, H, W)
    lightness = curves_batch(lab[:, :1] / 100.0, coef) * 100.0
    lab = torch.cat([lightness, lab[:, 1:]], dim=1)
    return (2.0 * curves_batch(x, coef) + truncate(lab2rgb_batch(lab))) / 3.0


# ---------------------------------------------------------------------------------------------
# 17. darken (imdarken)
# ---------------------------------------------------------------------------------------------


def darken(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imdarken(I, amount)``: midpoint of the tone curve lowered to 0.5 - amount / 2.

    The generator calls ``imdarken`` without ``dolab``, so unlike brighten there is no Lab blend:
    the curve is applied to R, G and B directly.
    """
    del rng
    return curves(img, 0.5 - amount / 2.0)


def darken_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``darken`` for a (B, 3, H, W) batch."""
    del gen
    return curves_batch(x, 0.5 - amount / 2.0)


# ---------------------------------------------------------------------------------------------
# 18. mean shift (immeanshift)
# ---------------------------------------------------------------------------------------------


def mean_shift(img: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """``immeanshift(I, shift)``: add ``shift`` to every value and clip to [0, 1].

    The generator's final ``mapmm`` stretches the clipped result back to the full [0, 1] range,
    so what survives of the shift is the clipping of one end of the histogram (a quirk of the
    reference, kept). Shift 0 (level 3) gives back the input.
    """
    del rng
    return truncate(img + shift, 0.0, 1.0)


def mean_shift_batch(x: torch.Tensor, shift: float, gen: torch.Generator) -> torch.Tensor:
    """``mean_shift`` for a (B, 3, H, W) batch."""
    del gen
    return truncate(x + shift, 0.0, 1.0)


IMPLEMENTATIONS: dict[str, Implementation] = {
    "brighten": Implementation(single=brighten, batch=brighten_batch, stochastic=False),
    "darken": Implementation(single=darken, batch=darken_batch, stochastic=False),
    "mean_shift": Implementation(single=mean_shift, batch=mean_shift_batch, stochastic=False),
}
