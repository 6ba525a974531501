"""KADID contrast family: 25 contrast change.

The reference ``imcontrastc`` pushes the quarter points of a spline tone curve apart (more
contrast) or together (less contrast).
"""

from __future__ import annotations

import numpy as np
import torch

from ._ops import curves, curves_batch
from ._spec import Implementation


def _knots(amount: float) -> tuple[float, float]:
    """Curve values at x = 0.3 and x = 0.7 for ``amount`` (in [-1, 1] in the reference)."""
    return 0.25 - amount / 4.0, 0.75 + amount / 4.0


def contrast_change(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imcontrastc(I, amount)``: ``curves(I, [0.25 - amount/4, 0.75 + amount/4])``.

    The knots sit at x = 0.3 / 0.7 but take the values 0.25 / 0.75, so amount 0 (level 3) is not
    the identity: it is a mild S-curve. The reference does that too; kept.
    """
    del rng
    return curves(img, _knots(amount))


def contrast_change_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``contrast_change`` for a (B, 3, H, W) batch."""
    del gen
    return curves_batch(x, _knots(amount))


IMPLEMENTATIONS: dict[str, Implementation] = {
    "contrast_change": Implementation(
        single=contrast_change, batch=contrast_change_batch, stochastic=False
    ),
}
