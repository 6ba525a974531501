"""Array math shared by the distortion families, in two flavours.

Single-image path: NumPy float64 arrays shaped (H, W, C), as the reference MATLAB code works.
Batched path: torch float32 tensors shaped (B, C, H, W), on CPU or CUDA.

Every function here mirrors one MATLAB routine the reference generator (``imdist_generator``)
relies on; the docstring names it. Values are images in [0, 1] unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.interpolate import CubicSpline

# ---------------------------------------------------------------------------------------------
# mapmm and uint8 conversion
# ---------------------------------------------------------------------------------------------


def mapmm(a: np.ndarray) -> np.ndarray:
    """MATLAB ``mapmm``: map the global minimum and maximum (all channels together) to [0, 1].

    A constant array is returned unchanged (as the reference does).
    """
    a = np.asarray(a, dtype=np.float64)
    lo, hi = a.min(), a.max()
    if lo < hi:
        out = a - lo
        out *= 1.0 / (hi - lo)
        return out
    return a


def mapmm_batch(x: torch.Tensor) -> torch.Tensor:
    """``mapmm`` per image of a (B, C, H, W) batch; constant images are left unchanged."""
    flat = x.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    span = hi - lo
    ok = span > 0
    return torch.where(ok, (x - lo) / torch.where(ok, span, torch.ones_like(span)), x)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float64 in [0, 1], min-max normalised as ``imdist_generator`` does.

    ``mapmm`` of a uint8 image maps its own minimum to 0 and maximum to 1. A constant image
    cannot be stretched; it is scaled by 1/255 instead so that it stays a valid [0, 1] image.
    """
    x = image.astype(np.float64)
    if x.min() < x.max():
        return mapmm(x)
    return x / 255.0


def to_unit_float_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [0, 1], per-image min-max (see ``to_unit_float``)."""
    x = images.float()
    flat = x.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    span = hi - lo
    ok = span > 0
    return torch.where(ok, (x - lo) / torch.where(ok, span, torch.ones_like(span)), x / 255.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``im2uint8`` of a double image: clip to [0, 1], scale by 255, round half up."""
    # Truncation of a non-negative value is floor, so astype rounds half up here.
    y = np.clip(x, 0.0, 1.0)
    y *= 255.0
    y += 0.5
    return y.astype(np.uint8)


def to_uint8_batch(x: torch.Tensor) -> torch.Tensor:
    """``im2uint8`` for a float batch."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def truncate(x, lo: float = 0.0, hi: float = 1.0):
    """MATLAB ``truncate``: clip to [lo, hi] (NumPy array or torch tensor)."""
    if isinstance(x, torch.Tensor):
        return x.clamp(lo, hi)
    return np.clip(x, lo, hi)


# ---------------------------------------------------------------------------------------------
# Linear filtering
# ---------------------------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """1-D Gaussian of MATLAB ``imgaussfilt``'s default size, 2*ceil(2*sigma)+1, summing to 1."""
    half = int(math.ceil(2.0 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def gaussian_filter(a: np.ndarray, sigma: float) -> np.ndarray:
    """MATLAB ``imgaussfilt(a, sigma)``: separable Gaussian, replicate padding, per channel."""
    k = gaussian_kernel1d(sigma)
    out = ndimage.correlate1d(a, k, axis=0, mode="nearest")
    return ndimage.correlate1d(out, k, axis=1, mode="nearest")


def gaussian_filter_batch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``imgaussfilt`` on a (B, C, H, W) batch: separable Gaussian, replicate padding."""
    k = torch.as_tensor(gaussian_kernel1d(sigma), dtype=x.dtype, device=x.device)
    return separable_filter_batch(x, k, k)


def separable_filter_batch(x: torch.Tensor, kv: torch.Tensor, kh: torch.Tensor) -> torch.Tensor:
    """Correlate every channel with kv (vertical) then kh (horizontal), replicate padding."""
    b, c, h, w = x.shape
    pv, ph = kv.numel() // 2, kh.numel() // 2
    # One grouped convolution over all B*C planes: much faster on CPU than a batch of 1-channel
    # convolutions.
    y = F.pad(x, (0, 0, pv, pv), mode="replicate").reshape(1, b * c, h + 2 * pv, w)
    y = F.conv2d(y, kv.view(1, 1, -1, 1).expand(b * c, 1, -1, 1), groups=b * c)
    y = F.pad(y, (ph, ph, 0, 0), mode="replicate")
    y = F.conv2d(y, kh.view(1, 1, 1, -1).expand(b * c, 1, 1, -1), groups=b * c)
    return y.reshape(b, c, h, w)


def filter2d(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(a, kernel, 'replicate', 'same')`` (correlation) per channel."""
    k = kernel[:, :, None] if a.ndim == 3 else kernel
    return ndimage.correlate(a, k, mode="nearest")


def filter2d_batch(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``imfilter`` with replicate padding on a (B, C, H, W) batch.

    ``kernels`` is one (kh, kw) kernel for all images, or (B, kh, kw): one kernel per image
    (odd sizes). Correlation, as MATLAB's ``imfilter`` does.
    """
    b, c, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.unsqueeze(0).expand(b, -1, -1)
    kh, kw = kernels.shape[-2:]
    y = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, kh, kw)
    y = F.conv2d(y.reshape(1, b * c, h + kh - 1, w + kw - 1), weight, groups=b * c)
    return y.reshape(b, c, h, w)


# ---------------------------------------------------------------------------------------------
# Colour spaces (MATLAB rgb2lab / lab2rgb defaults: sRGB, D65 white point)
# ---------------------------------------------------------------------------------------------

_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_WHITE_D65 = np.array([0.9504, 1.0000, 1.0888])  # MATLAB whitepoint('d65')
_EPS_LAB = (6.0 / 29.0) ** 3
_KAPPA = 1.0 / (3.0 * (6.0 / 29.0) ** 2)


def _srgb_to_linear(c):
    if isinstance(c, torch.Tensor):
        return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    out = c / 12.92
    hi = c > 0.04045
    out[hi] = ((c[hi] + 0.055) / 1.055) ** 2.4
    return out


def _linear_to_srgb(c):
    if isinstance(c, torch.Tensor):
        return torch.where(
            c <= 0.0031308, 12.92 * c, 1.055 * c.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055
        )
    out = 12.92 * c
    hi = c > 0.0031308
    out[hi] = 1.055 * c[hi] ** (1.0 / 2.4) - 0.055
    return out


def _lab_f(t):
    if isinstance(t, torch.Tensor):
        return torch.where(
            t > _EPS_LAB, t.clamp_min(_EPS_LAB) ** (1.0 / 3.0), t * _KAPPA + 4.0 / 29.0
        )
    out = t * _KAPPA + 4.0 / 29.0
    hi = t > _EPS_LAB
    out[hi] = np.cbrt(t[hi])
    return out


def _lab_finv(f):
    if isinstance(f, torch.Tensor):
        return torch.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) / _KAPPA)
    out = (f - 4.0 / 29.0) / _KAPPA
    hi = f > 6.0 / 29.0
    out[hi] = f[hi] ** 3
    return out


def rgb2lab(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2lab`` (sRGB, D65) of an (H, W, 3) image in [0, 1]; L in [0, 100]."""
    xyz = _srgb_to_linear(rgb) @ _SRGB_TO_XYZ.T / _WHITE_D65
    f = _lab_f(xyz)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab2rgb(lab: np.ndarray) -> np.ndarray:
    """MATLAB ``lab2rgb`` (sRGB, D65); the result is not clipped (callers ``truncate``)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = _lab_finv(f) * _WHITE_D65
    return _linear_to_srgb(xyz @ _XYZ_TO_SRGB.T)


def _mix_channels(x: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def rgb2lab_batch(rgb: torch.Tensor) -> torch.Tensor:
    """``rgb2lab`` for a (B, 3, H, W) batch."""
    w = torch.as_tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    f = _lab_f(_mix_channels(_srgb_to_linear(rgb), _SRGB_TO_XYZ) / w)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def lab2rgb_batch(lab: torch.Tensor) -> torch.Tensor:
    """``lab2rgb`` for a (B, 3, H, W) batch; not clipped."""
    w = torch.as_tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], dim=1)
    return _linear_to_srgb(_mix_channels(_lab_finv(f) * w, _XYZ_TO_SRGB))


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray``: 0.2989 R + 0.5870 G + 0.1140 B."""
    return rgb @ np.array([0.2989, 0.5870, 0.1140])


def rgb2gray_batch(rgb: torch.Tensor) -> torch.Tensor:
    """``rgb2gray`` for (B, 3, H, W) -> (B, 1, H, W)."""
    w = torch.tensor([0.2989, 0.5870, 0.1140], dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("c,bchw->bhw", w, rgb).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# Tone curves (MATLAB utils/curves.m: a not-a-knot cubic spline through control points)
# ---------------------------------------------------------------------------------------------


def curve_spline(coef) -> CubicSpline:
    """The spline of ``curves(x, coef)``.

    A scalar ``coef`` bends the midpoint: knots (0, 0), (0.5, coef), (1, 1) (three points: the
    not-a-knot spline is the parabola through them). A pair ``(lo, hi)`` gives knots
    (0, 0), (0.3, lo), (0.5, 0.5), (0.7, hi), (1, 1).
    """
    if np.isscalar(coef):
        xs, ys = [0.0, 0.5, 1.0], [0.0, float(coef), 1.0]
    else:
        lo, hi = coef
        xs, ys = [0.0, 0.3, 0.5, 0.7, 1.0], [0.0, float(lo), 0.5, float(hi), 1.0]
    return CubicSpline(xs, ys, bc_type="not-a-knot")


def curves(x: np.ndarray, coef) -> np.ndarray:
    """MATLAB ``curves``: apply the tone curve then clip to [0, 1]."""
    return np.clip(curve_spline(coef)(x), 0.0, 1.0)


def curves_batch(x: torch.Tensor, coef) -> torch.Tensor:
    """``curves`` on a tensor: piecewise cubic evaluated with Horner's rule, then clipped."""
    cs = curve_spline(coef)
    c = cs.c  # (4, pieces), highest power first
    if np.isscalar(coef):
        # Three knots: the not-a-knot spline is one parabola, so piece 0 holds everywhere.
        c0 = [float(v) for v in c[:, 0]]
        y = x * c0[0] + c0[1]
        y = y * x + c0[2]
        y = y * x + c0[3]
        return y.clamp_(0.0, 1.0)
    breaks = torch.as_tensor(cs.x, dtype=x.dtype, device=x.device)
    ct = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    idx = (torch.bucketize(x.contiguous(), breaks[1:-1], right=True)).clamp(0, ct.shape[1] - 1)
    t = x - breaks[idx]
    y = ct[0][idx]
    for k in range(1, 4):
        y = y * t + ct[k][idx]
    return y.clamp(0.0, 1.0)


def torch_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A torch generator on ``device``: seeded when ``seed`` is given, else from OS entropy."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen
