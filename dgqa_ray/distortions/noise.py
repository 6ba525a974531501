"""KADID noise family: 11 white noise, 12 white noise in YCbCr, 13 impulse, 14 multiplicative,
15 denoise.

Types 11-14 are MATLAB ``imnoise`` on a double image, which adds the noise and then clips to
[0, 1]:

* ``'gaussian', 0, v``: x + sqrt(v) * N(0, 1)
* ``'salt & pepper', d``: each value independently becomes 0 with probability d/2 and 1 with
  probability d/2 (R, G and B are hit independently, so a hit pixel is usually coloured)
* ``'speckle', v``: x + sqrt(12 v) * x * (U(0, 1) - 0.5), zero-mean uniform noise of variance v
  times the signal

All four are stochastic: the draws come from the ``rng`` / ``gen`` argument only, one per value,
so every image of a batch gets its own noise field.

Type 15 adds white noise and denoises it again. The reference uses MATLAB's pretrained DnCNN,
whose weights are not available here; a non-local means denoiser stands in (see ``denoise``).
It has no torch kernel (``batch=None``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.restoration import denoise_nl_means

from ._spec import Implementation

# ---------------------------------------------------------------------------------------------
# MATLAB rgb2ycbcr / ycbcr2rgb for double images (ITU-R BT.601, studio range scaled to [0, 1])
# ---------------------------------------------------------------------------------------------

# Rows give Y, Cb, Cr in 0..255 units per unit of R, G, B in [0, 1].
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
# Forward map on [0, 1] images: ycbcr = A @ rgb + b, with A = T / 255 and b = offset / 255.
_FWD_MATRIX = _RGB_TO_YCBCR / 255.0
_FWD_OFFSET = _YCBCR_OFFSET / 255.0
# Inverse map: rgb = inv(A) @ (ycbcr - b).
_INV_MATRIX = np.linalg.inv(_FWD_MATRIX)
_INV_OFFSET = -_INV_MATRIX @ _FWD_OFFSET


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` of a double (H, W, 3) RGB image in [0, 1].

    Y lands in [16, 235] / 255 and Cb, Cr in [16, 240] / 255; not clipped (none is needed).
    """
    return rgb @ _FWD_MATRIX.T + _FWD_OFFSET


def ycbcr2rgb(ycbcr: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` of a double (H, W, 3) image: the inverse affine map, then clipped
    to [0, 1] as MATLAB does for double output (noisy chroma easily leaves the RGB cube)."""
    return np.clip(ycbcr @ _INV_MATRIX.T + _INV_OFFSET, 0.0, 1.0)


def _affine_channels(x: torch.Tensor, matrix: np.ndarray, offset: np.ndarray) -> torch.Tensor:
    """matrix @ pixel + offset for every pixel of a (B, 3, H, W) batch."""
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    b = torch.as_tensor(offset, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x) + b


def rgb2ycbcr_batch(rgb: torch.Tensor) -> torch.Tensor:
    """``rgb2ycbcr`` for a (B, 3, H, W) batch."""
    return _affine_channels(rgb, _FWD_MATRIX, _FWD_OFFSET)


def ycbcr2rgb_batch(ycbcr: torch.Tensor) -> torch.Tensor:
    """``ycbcr2rgb`` for a (B, 3, H, W) batch, clipped to [0, 1]."""
    return _affine_channels(ycbcr, _INV_MATRIX, _INV_OFFSET).clamp(0.0, 1.0)


def _check_variance(variance: float) -> float:
    if not variance >= 0:
        raise ValueError(f"variance: expected a noise variance >= 0, got {variance!r}")
    return float(variance)


# ---------------------------------------------------------------------------------------------
# 11. white noise (imnoisegauss)
# ---------------------------------------------------------------------------------------------


def gaussian_noise(img: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoise(I, 'gaussian', 0, variance)`` on a double image: add N(0, variance), clip."""
    sigma = math.sqrt(_check_variance(variance))
    noisy = rng.standard_normal(img.shape)  # (H, W, 3), reused in place below
    noisy *= sigma
    noisy += img
    return np.clip(noisy, 0.0, 1.0, out=noisy)


def gaussian_noise_batch(x: torch.Tensor, variance: float, gen: torch.Generator) -> torch.Tensor:
    """``gaussian_noise`` for a (B, 3, H, W) batch; an independent field per image."""
    sigma = math.sqrt(_check_variance(variance))
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return noise.mul_(sigma).add_(x).clamp_(0.0, 1.0)  # in place: one (B, 3, H, W) buffer


def white_noise(img: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoisegauss(I, variance)``: white Gaussian noise on R, G and B, clipped to [0, 1]."""
    return gaussian_noise(img, variance, rng)


def white_noise_batch(x: torch.Tensor, variance: float, gen: torch.Generator) -> torch.Tensor:
    """``white_noise`` for a (B, 3, H, W) batch."""
    return gaussian_noise_batch(x, variance, gen)


# ---------------------------------------------------------------------------------------------
# 12. white noise in colour components (imnoisecolorcomp)
# ---------------------------------------------------------------------------------------------


def white_noise_color_component(
    img: np.ndarray, variance: float, rng: np.random.Generator
) -> np.ndarray:
    """``imnoisecolorcomp(I, variance)``: ``ycbcr2rgb(imnoise(rgb2ycbcr(I), 'gaussian', 0, v))``.

    The noise hits Y, Cb and Cr alike (each clipped to [0, 1] by ``imnoise``); the inverse
    transform amplifies chroma noise (R gets 1.6x the Cr noise), hence the small variances.
    """
    return ycbcr2rgb(gaussian_noise(rgb2ycbcr(img), variance, rng))


def white_noise_color_component_batch(
    x: torch.Tensor, variance: float, gen: torch.Generator
) -> torch.Tensor:
    """``white_noise_color_component`` for a (B, 3, H, W) batch."""
    return ycbcr2rgb_batch(gaussian_noise_batch(rgb2ycbcr_batch(x), variance, gen))


# ---------------------------------------------------------------------------------------------
# 13. impulse noise (imnoiseimpulse)
# ---------------------------------------------------------------------------------------------


def _check_density(density: float) -> float:
    if not 0 <= density <= 1:
        raise ValueError(f"density: expected an impulse noise density in [0, 1], got {density!r}")
    return float(density)


def impulse_noise(img: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoise(I, 'salt & pepper', density)``: with u ~ U(0, 1) per value, u < d/2 -> 0
    (pepper), d/2 <= u < d -> 1 (salt), else unchanged."""
    d = _check_density(density)
    u = rng.random(img.shape)
    out = img.copy()
    out[u < d / 2.0] = 0.0
    out[(u >= d / 2.0) & (u < d)] = 1.0
    return out


def impulse_noise_batch(x: torch.Tensor, density: float, gen: torch.Generator) -> torch.Tensor:
    """``impulse_noise`` for a (B, 3, H, W) batch."""
    d = _check_density(density)
    u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    out = x.masked_fill(u < d / 2.0, 0.0)  # pepper
    return out.masked_fill_((u >= d / 2.0) & (u < d), 1.0)  # salt


# ---------------------------------------------------------------------------------------------
# 14. multiplicative noise (imnoisemultiplicative)
# ---------------------------------------------------------------------------------------------


def multiplicative_noise(img: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoise(I, 'speckle', variance)``: x + x * n with n uniform, zero mean, variance v
    (n = sqrt(12 v) * (u - 0.5)), clipped to [0, 1]. Black stays black."""
    scale = math.sqrt(12.0 * _check_variance(variance))
    noisy = rng.random(img.shape)  # (H, W, 3), turned into x * (1 + scale * (u - 0.5))
    noisy -= 0.5
    noisy *= scale
    noisy += 1.0
    noisy *= img
    return np.clip(noisy, 0.0, 1.0, out=noisy)


def multiplicative_noise_batch(
    x: torch.Tensor, variance: float, gen: torch.Generator
) -> torch.Tensor:
    """``multiplicative_noise`` for a (B, 3, H, W) batch."""
    scale = math.sqrt(12.0 * _check_variance(variance))
    u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    # x * (1 + scale * (u - 0.5)), in place in the draw buffer
    return u.sub_(0.5).mul_(scale).add_(1.0).mul_(x).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# 15. denoise (imdenoise)
# ---------------------------------------------------------------------------------------------

# Non-local means settings: 5x5 patches searched within 13x13 (patch_distance 6), the
# scikit-image gallery's choice for photos; filter strength h = 0.8 sigma, its recommendation
# when the noise sigma is passed in (the distance then has 2 sigma^2 subtracted).
_NLM_PATCH_SIZE = 5
_NLM_PATCH_DISTANCE = 6
_NLM_H_PER_SIGMA = 0.8


def denoise(img: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``imdenoise(I, variance)``: add white noise (``imnoise`` gaussian, clipped), then denoise
    R, G and B separately.

    The reference denoises each channel with MATLAB's pretrained DnCNN (``denoiseImage``), which
    cannot be reproduced without its weights. Non-local means (scikit-image, fast mode) with the
    known noise sigma = sqrt(variance) stands in: it leaves the same kind of artefact (smoothed
    texture, blotches at high noise) at ~0.15 s for 256x256 on one core. BM3D, the stronger
    classic, took 10 s (2.9 s with its low-complexity profile) for the same image, too slow for
    generating a dataset. Deterministic given ``rng``: only the noise is random.
    """
    sigma = math.sqrt(_check_variance(variance))
    noisy = gaussian_noise(img, variance, rng)
    if sigma == 0.0:
        return noisy
    channels = [
        denoise_nl_means(
            noisy[..., c],
            h=_NLM_H_PER_SIGMA * sigma,
            sigma=sigma,
            patch_size=_NLM_PATCH_SIZE,
            patch_distance=_NLM_PATCH_DISTANCE,
            fast_mode=True,
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)  # (H, W, 3)


IMPLEMENTATIONS: dict[str, Implementation] = {
    "white_noise": Implementation(single=white_noise, batch=white_noise_batch, stochastic=True),
    "white_noise_color_component": Implementation(
        single=white_noise_color_component,
        batch=white_noise_color_component_batch,
        stochastic=True,
    ),
    "impulse_noise": Implementation(
        single=impulse_noise, batch=impulse_noise_batch, stochastic=True
    ),
    "multiplicative_noise": Implementation(
        single=multiplicative_noise, batch=multiplicative_noise_batch, stochastic=True
    ),
    "denoise": Implementation(single=denoise, batch=None, stochastic=True),
}
