"""KADID blur family: 1 gaussian_blur, 2 lens_blur, 3 motion_blur.

Each type filters every colour channel with one kernel and replicate padding, as the reference
MATLAB code does (``imgaussfilt``, ``imfilter(..., 'replicate', 'same')``):

- 1 ``gaussian_blur`` (``imblurgauss``): ``imgaussfilt(x, sigma)``.
- 2 ``lens_blur`` (``imblurlens``): ``fspecial('disk', radius)``, a pillbox whose cells are
  weighted by the area of the pixel square inside the circle.
- 3 ``motion_blur`` (``imblurmotion``): ``fspecial('motion', length, angle)`` with a random
  integer angle in [0, 180] degrees per image.

The kernels are built once per parameter (``functools.lru_cache``) and returned read-only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import signal

from . import _ops
from ._spec import Implementation

# Kernels at least this wide are applied through the FFT in the single-image path: direct
# correlation costs O(k^2) per pixel and loses from a 7x7 kernel on (measured at 256x256).
_FFT_MIN_KERNEL = 7
_EPS = float(np.finfo(np.float64).eps)  # MATLAB ``eps``


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


def _disk_quadrant_area(x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Area of the disk of ``radius`` (centred at 0) inside the rectangle [0, x] x [0, y].

    x, y >= 0. Exact: below the height where the circle meets y = const the region is a
    rectangle, beyond it the integral of sqrt(r^2 - t^2), whose primitive is closed-form.
    """
    x = np.minimum(x, radius)
    y = np.minimum(y, radius)
    r2 = radius * radius

    def primitive(t: np.ndarray) -> np.ndarray:  # integral of sqrt(r^2 - s^2) ds from 0 to t
        return 0.5 * (t * np.sqrt(np.maximum(r2 - t * t, 0.0)) + r2 * np.arcsin(t / radius))

    x_meet = np.sqrt(np.maximum(r2 - y * y, 0.0))  # where the arc leaves the line Y = y
    flat = np.minimum(x, x_meet)
    return y * flat + primitive(x) - primitive(flat)


def _disk_corner_area(x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Signed area of the disk inside [0, x] x [0, y] for x, y of any sign (by symmetry)."""
    return np.sign(x) * np.sign(y) * _disk_quadrant_area(np.abs(x), np.abs(y), radius)


@functools.lru_cache(maxsize=32)
def disk_kernel(radius: float) -> np.ndarray:
    """MATLAB ``fspecial('disk', radius)``: (2c+1, 2c+1) with c = ceil(radius - 0.5).

    Each cell holds the exact area of its unit pixel square inside the circle of ``radius``
    centred on the middle cell, and the kernel is normalised to sum 1 (a pillbox whose rim is
    anti-aliased). MATLAB evaluates the same areas with a closed form.
    """
    if not radius > 0:
        raise ValueError(f"radius: expected a positive disk radius, got {radius!r}")
    half = math.ceil(radius - 0.5)
    t = np.arange(-half, half + 1, dtype=np.float64)
    y, x = np.meshgrid(t, t, indexing="ij")  # (2c+1, 2c+1) pixel centres; rows are y

    def corner(dx: float, dy: float) -> np.ndarray:
        return _disk_corner_area(x + dx, y + dy, radius)

    # Area inside [x-0.5, x+0.5] x [y-0.5, y+0.5] by inclusion-exclusion of corner areas.
    area = corner(0.5, 0.5) - corner(-0.5, 0.5) - corner(0.5, -0.5) + corner(-0.5, -0.5)
    # Squares wholly inside or outside are exactly 1 or 0 (no inclusion-exclusion round-off).
    near2 = np.maximum(np.abs(x) - 0.5, 0.0) ** 2 + np.maximum(np.abs(y) - 0.5, 0.0) ** 2
    far2 = (np.abs(x) + 0.5) ** 2 + (np.abs(y) + 0.5) ** 2
    area = np.where(near2 >= radius * radius, 0.0, np.where(far2 <= radius * radius, 1.0, area))
    return _read_only(area / area.sum())


@functools.lru_cache(maxsize=1024)
def motion_kernel(length: float, angle: float) -> np.ndarray:
    """MATLAB ``fspecial('motion', length, angle)``: an anti-aliased line segment, odd sizes.

    The construction follows MATLAB's documented algorithm: a segment of ``length`` pixels
    through the centre at ``angle`` degrees counter-clockwise; every cell weighs
    ``1 - distance`` to the segment (distance to the nearest end point for cells beyond an
    end), cells further than one pixel get 0; normalised to sum 1. As in MATLAB, one half of
    the kernel is computed on a quadrant grid and mirrored through the centre, MATLAB's
    ``eps`` terms are kept (so 90 < angle < 180 with length 1 gives a 1x3 kernel whose outer
    cells are ~1e-16) and a horizontal or vertical motion gives a 1-D kernel.
    """
    if not length > 0:
        raise ValueError(f"length: expected a positive motion length in pixels, got {length!r}")
    length = max(1.0, float(length))
    half = (length - 1.0) / 2.0
    phi = (float(angle) % 180.0) / 180.0 * math.pi
    cos_phi, sin_phi = math.cos(phi), math.sin(phi)
    x_sign = float(np.sign(cos_phi))
    line_width = 1.0

    # Quadrant grid that holds one half of the segment; the eps term keeps 0 and 90 degrees
    # from growing an extra row or column.
    x_end = math.trunc(half * cos_phi + line_width * x_sign - length * _EPS)
    y_end = math.trunc(half * sin_phi + line_width - length * _EPS)
    xs = x_sign * np.arange(abs(x_end) + 1, dtype=np.float64)
    ys = np.arange(y_end + 1, dtype=np.float64)
    x, y = np.meshgrid(xs, ys)  # (y_end + 1, |x_end| + 1)

    dist = y * cos_phi - x * sin_phi  # signed distance across the line
    beyond_end = (np.hypot(x, y) >= half) & (np.abs(dist) <= line_width)
    # Position along the line (x cos + y sin), written as MATLAB writes it; cos_phi is never
    # exactly 0 because pi/2 is not representable.
    along = np.abs((x + dist * sin_phi) / cos_phi)
    past_end = half - along
    dist = np.where(beyond_end, np.sqrt(dist * dist + past_end * past_end), dist)
    weight = np.maximum(line_width + _EPS - np.abs(dist), 0.0)

    # Mirror the quadrant through the centre: the quadrant's (0, 0) cell is the kernel centre.
    rows, cols = weight.shape
    kernel = np.zeros((2 * rows - 1, 2 * cols - 1))
    kernel[:rows, :cols] = weight[::-1, ::-1]
    kernel[rows - 1 :, cols - 1 :] = weight
    kernel /= kernel.sum() + _EPS * length * length
    if cos_phi > 0:
        kernel = kernel[::-1].copy()  # rows grow downwards: flip so the angle is anticlockwise
    return _read_only(kernel)


def _pad_kernels(kernels: list[np.ndarray]) -> np.ndarray:
    """Stack odd-sized kernels into (B, S, S), each centred in zeros (S = largest side)."""
    size = max(max(k.shape) for k in kernels)
    out = np.zeros((len(kernels), size, size))
    for i, k in enumerate(kernels):
        top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        out[i, top : top + k.shape[0], left : left + k.shape[1]] = k
    return out


def _correlate_dense(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``imfilter(img, kernel, 'replicate', 'same')`` for a dense kernel, via FFT when large."""
    kh, kw = kernel.shape
    if min(kh, kw) < _FFT_MIN_KERNEL:
        return _ops.filter2d(img, kernel)
    padded = np.pad(img, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="edge")
    # Correlation is convolution with the kernel flipped; 'valid' keeps exactly (H, W).
    return signal.fftconvolve(padded, kernel[::-1, ::-1, None], mode="valid", axes=(0, 1))


# ---------------------------------------------------------------------------------------------
# 1. gaussian_blur
# ---------------------------------------------------------------------------------------------


def gaussian_blur(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``imblurgauss``: Gaussian of std ``sigma``, size 2*ceil(2*sigma)+1, replicate edges."""
    return _ops.gaussian_filter(img, sigma)


def gaussian_blur_batch(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """``gaussian_blur`` for a (B, 3, H, W) batch."""
    return _ops.gaussian_filter_batch(x, sigma)


# ---------------------------------------------------------------------------------------------
# 2. lens_blur
# ---------------------------------------------------------------------------------------------


def lens_blur(img: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``imblurlens``: pillbox (``fspecial('disk', radius)``) with replicate edges."""
    return _correlate_dense(img, disk_kernel(radius))


def lens_blur_batch(x: torch.Tensor, radius: float, gen: torch.Generator) -> torch.Tensor:
    """``lens_blur`` for a (B, 3, H, W) batch (one depthwise convolution)."""
    kernel = torch.tensor(disk_kernel(radius), dtype=x.dtype, device=x.device)
    return _ops.filter2d_batch(x, kernel)


# ---------------------------------------------------------------------------------------------
# 3. motion_blur
# ---------------------------------------------------------------------------------------------


def motion_blur(img: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """``imblurmotion``: motion kernel of ``length`` at a random integer angle in [0, 180]."""
    angle = int(rng.integers(0, 181))  # MATLAB randi([0, 180])
    # Direct correlation: scipy skips the zero cells, and a line has only ~2*length of them.
    return _ops.filter2d(img, motion_kernel(length, angle))


def motion_blur_batch(x: torch.Tensor, length: float, gen: torch.Generator) -> torch.Tensor:
    """``motion_blur`` for a (B, 3, H, W) batch: its own random angle and kernel per image."""
    angles = torch.randint(0, 181, (x.shape[0],), generator=gen, device=x.device)
    kernels = _pad_kernels([motion_kernel(length, a) for a in angles.tolist()])  # (B, S, S)
    return _ops.filter2d_batch(x, torch.as_tensor(kernels, dtype=x.dtype, device=x.device))


IMPLEMENTATIONS: dict[str, Implementation] = {
    "gaussian_blur": Implementation(gaussian_blur, gaussian_blur_batch, stochastic=False),
    "lens_blur": Implementation(lens_blur, lens_blur_batch, stochastic=False),
    "motion_blur": Implementation(motion_blur, motion_blur_batch, stochastic=True),
}
