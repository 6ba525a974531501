"""KADID noise family (11-15): imnoise statistics, YCbCr maths, clipping, seeding, strength."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import apply, apply_batch, get_distortion
from dgqa_ray.distortions._ops import to_unit_float
from dgqa_ray.distortions.noise import (
    IMPLEMENTATIONS,
    denoise,
    impulse_noise,
    impulse_noise_batch,
    multiplicative_noise,
    multiplicative_noise_batch,
    rgb2ycbcr,
    rgb2ycbcr_batch,
    white_noise,
    white_noise_batch,
    white_noise_color_component,
    white_noise_color_component_batch,
    ycbcr2rgb,
    ycbcr2rgb_batch,
)
from tests.conftest import natural_image

IMAGE = natural_image(96, 128, seed=5)  # (96, 128, 3) uint8
X = to_unit_float(IMAGE)
GREY = np.full((128, 128, 3), 0.5)  # no clipping at the tested strengths
NOISE_TYPES = [
    "white_noise",
    "white_noise_color_component",
    "impulse_noise",
    "multiplicative_noise",
]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def to_batch(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (B, 3, H, W)


def to_images(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).double().numpy()  # (B, H, W, 3)


# ---------------------------------------------------------------------------------------------
# YCbCr conversions (MATLAB rgb2ycbcr / ycbcr2rgb, double)
# ---------------------------------------------------------------------------------------------


def test_rgb2ycbcr_matches_matlab_values():
    rgb = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    expected = np.array([[[16.0, 128.0, 128.0], [235.0, 128.0, 128.0], [81.481, 90.203, 240.0]]])
    np.testing.assert_allclose(rgb2ycbcr(rgb) * 255.0, expected, atol=1e-9)


def test_ycbcr_round_trip_is_identity_and_clips():
    np.testing.assert_allclose(ycbcr2rgb(rgb2ycbcr(X)), X, atol=1e-12)
    out_of_gamut = np.array([[[0.5, 0.0, 1.0]]])  # strong blue-red chroma with mid luma
    rgb = ycbcr2rgb(out_of_gamut)
    assert rgb.min() == 0.0 and rgb.max() == 1.0


def test_ycbcr_batch_matches_single():
    xb = to_batch(X, X[::-1])
    ycc = rgb2ycbcr_batch(xb)
    np.testing.assert_allclose(to_images(ycc)[1], rgb2ycbcr(X[::-1]), atol=1e-5)
    np.testing.assert_allclose(to_images(ycbcr2rgb_batch(ycc))[1], X[::-1], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# 11. white noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", get_distortion("white_noise").levels)
def test_white_noise_has_the_requested_variance(variance):
    residual = white_noise(GREY, variance, rng()) - GREY
    assert abs(residual.mean()) < 0.05 * math.sqrt(variance)
    assert residual.std() == pytest.approx(math.sqrt(variance), rel=0.03)
    residual_b = to_images(white_noise_batch(to_batch(GREY), variance, gen()))[0] - GREY
    assert residual_b.std() == pytest.approx(math.sqrt(variance), rel=0.03)


def test_white_noise_is_clipped_like_imnoise():
    black = np.zeros((64, 64, 3))
    out = white_noise(black, 0.01, rng())
    assert out.min() == 0.0 and 0.4 < (out == 0.0).mean() < 0.6
    out_b = white_noise_batch(to_batch(black), 0.01, gen())
    assert out_b.min() == 0.0 and 0.4 < (out_b == 0.0).float().mean() < 0.6


# ---------------------------------------------------------------------------------------------
# 12. white noise in YCbCr
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", get_distortion("white_noise_color_component").levels)
def test_color_component_noise_is_white_in_ycbcr(variance):
    out = white_noise_color_component(GREY, variance, rng())
    residual = rgb2ycbcr(out) - rgb2ycbcr(GREY)  # (H, W, 3): Y, Cb, Cr noise
    np.testing.assert_allclose(residual.std(axis=(0, 1)), math.sqrt(variance), rtol=0.05)
    out_b = to_images(white_noise_color_component_batch(to_batch(GREY), variance, gen()))[0]
    residual_b = rgb2ycbcr(out_b) - rgb2ycbcr(GREY)
    np.testing.assert_allclose(residual_b.std(axis=(0, 1)), math.sqrt(variance), rtol=0.05)


def test_color_component_noise_couples_the_rgb_channels():
    # The same Y noise lands in R, G and B: their residuals correlate, unlike type 11's.
    out = white_noise_color_component(GREY, 0.003, rng())
    r, g, b = (out - GREY).reshape(-1, 3).T
    assert np.corrcoef(r, b)[0, 1] > 0.2
    r11, _, b11 = (white_noise(GREY, 0.003, rng()) - GREY).reshape(-1, 3).T
    assert abs(np.corrcoef(r11, b11)[0, 1]) < 0.05


# ---------------------------------------------------------------------------------------------
# 13. impulse noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", get_distortion("impulse_noise").levels)
def test_impulse_noise_sets_density_half_to_0_and_half_to_1(density):
    n = GREY.size
    tol = 4 * math.sqrt(n * density / 2) / n + 1e-4  # 4 binomial standard deviations
    outputs = [
        impulse_noise(GREY, density, rng()),
        to_images(impulse_noise_batch(to_batch(GREY), density, gen()))[0],
    ]
    for out in outputs:
        pepper, salt = (out == 0.0).mean(), (out == 1.0).mean()
        assert abs(pepper - density / 2) < tol and abs(salt - density / 2) < tol
        assert np.all((out == 0.0) | (out == 1.0) | (out == 0.5))


def test_impulse_noise_hits_channels_independently():
    out = impulse_noise(GREY, 0.03, rng())
    hit = out != 0.5  # (H, W, 3)
    both = (hit[..., 0] & hit[..., 1]).mean()
    assert both < 0.1 * hit[..., 0].mean()  # ~ d^2, not d


# ---------------------------------------------------------------------------------------------
# 14. multiplicative noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", get_distortion("multiplicative_noise").levels)
def test_multiplicative_noise_is_uniform_with_variance_times_signal(variance):
    half_width = math.sqrt(12 * variance) / 2  # n = sqrt(12 v) * (u - 0.5)
    outputs = [
        multiplicative_noise(GREY, variance, rng()),
        to_images(multiplicative_noise_batch(to_batch(GREY), variance, gen()))[0],
    ]
    for out in outputs:
        relative = (out - GREY) / GREY
        assert relative.std() == pytest.approx(math.sqrt(variance), rel=0.03)
        assert np.abs(relative).max() <= half_width * (1 + 1e-5)
        assert np.abs(relative).max() > 0.99 * half_width


def test_multiplicative_noise_keeps_black_black():
    x = X.copy()
    x[:10] = 0.0
    assert np.all(multiplicative_noise(x, 0.05, rng())[:10] == 0.0)
    assert torch.all(multiplicative_noise_batch(to_batch(x), 0.05, gen())[:, :, :10] == 0.0)


# ---------------------------------------------------------------------------------------------
# 11-14 together: identities, seeding, batches, strength per level
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOISE_TYPES)
def test_zero_strength_gives_back_the_input(name):
    impl = IMPLEMENTATIONS[name]
    np.testing.assert_allclose(impl.single(X, 0.0, rng()), X, atol=1e-12)
    xb = to_batch(X)
    torch.testing.assert_close(impl.batch(xb, 0.0, gen()), xb, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NOISE_TYPES)
def test_same_seed_same_noise_other_seed_other_noise(name):
    impl = IMPLEMENTATIONS[name]
    param = get_distortion(name).param(5)
    np.testing.assert_array_equal(impl.single(X, param, rng(1)), impl.single(X, param, rng(1)))
    assert not np.array_equal(impl.single(X, param, rng(1)), impl.single(X, param, rng(2)))
    xb = to_batch(X, X)  # two copies of one image
    a, b = impl.batch(xb, param, gen(1)), impl.batch(xb, param, gen(1))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a[0], a[1])  # each image of a batch gets its own draws


@pytest.mark.parametrize("name", NOISE_TYPES)
def test_error_grows_with_level(name):
    impl = IMPLEMENTATIONS[name]
    levels = get_distortion(name).levels
    errors = [np.abs(impl.single(X, p, rng()) - X).mean() for p in levels]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors
    xb = to_batch(X)
    errors_b = [(impl.batch(xb, p, gen()) - xb).abs().mean().item() for p in levels]
    assert all(a < b for a, b in zip(errors_b, errors_b[1:], strict=False)), errors_b


def test_bad_parameters_name_the_argument():
    with pytest.raises(ValueError, match="variance"):
        white_noise(X, -0.1, rng())
    with pytest.raises(ValueError, match="density"):
        impulse_noise_batch(to_batch(X), 1.5, gen())


# ---------------------------------------------------------------------------------------------
# 15. denoise
# ---------------------------------------------------------------------------------------------

SMALL = to_unit_float(natural_image(64, 64, seed=6))


def test_denoise_removes_most_of_the_added_noise():
    variance = 0.03
    noisy = white_noise(SMALL, variance, rng(3))  # the same draws denoise makes first
    out = denoise(SMALL, variance, rng(3))
    noisy_error = np.sqrt(((noisy - SMALL) ** 2).mean())
    denoised_error = np.sqrt(((out - SMALL) ** 2).mean())
    assert denoised_error < 0.6 * noisy_error
    assert out.shape == SMALL.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_denoise_is_deterministic_given_the_seed_and_zero_noise_is_identity():
    np.testing.assert_array_equal(denoise(SMALL, 0.1, rng(4)), denoise(SMALL, 0.1, rng(4)))
    np.testing.assert_allclose(denoise(SMALL, 0.0, rng(4)), SMALL, atol=1e-12)


def test_denoise_error_grows_with_level():
    levels = get_distortion("denoise").levels
    errors = [np.abs(denoise(SMALL, levels[i], rng()) - SMALL).mean() for i in (0, 2, 4)]
    assert errors[0] < errors[1] < errors[2], errors


# ---------------------------------------------------------------------------------------------
# Through the registry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist_type", [11, 12, 13, 14, 15])
def test_registry_seeds_the_noise(dist_type):
    dist = get_distortion(dist_type)
    assert dist.stochastic
    assert dist.has_batch_kernel == (dist_type != 15)
    small = natural_image(48, 64, seed=7)
    first = apply(small, dist_type, level=3, seed=11)
    np.testing.assert_array_equal(first, apply(small, dist_type, level=3, seed=11))
    assert not np.array_equal(first, apply(small, dist_type, level=3, seed=12))
    batch = torch.from_numpy(np.stack([small, small])).permute(0, 3, 1, 2).contiguous()
    out = apply_batch(batch, dist_type, level=3, seed=11)
    torch.testing.assert_close(out, apply_batch(batch, dist_type, level=3, seed=11))
    assert out.dtype == torch.uint8 and not torch.equal(out[0], out[1])
