"""The contract every distortion family module fulfils (see ``registry.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# Single-image path: (image (H, W, 3) float64 in [0, 1] after mapmm, level parameter, rng)
# -> float64 (H, W, 3), not yet min-max normalised (the caller applies mapmm and uint8).
SingleFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
# Batched path: (images (B, 3, H, W) float32 in [0, 1] after per-image mapmm, level parameter,
# torch generator on the images' device) -> float32 (B, 3, H, W), same device.
BatchFn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Implementation:
    """How one KADID distortion type is computed.

    ``batch`` is None for types that are not array math (codecs, palette quantisation, the
    denoiser): the batched API then runs ``single`` image by image on the CPU.
    """

    single: SingleFn
    batch: BatchFn | None
    stochastic: bool
