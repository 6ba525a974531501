"""Brightness family (KADID types 16-18): tone curves, the Lab blend of brighten, mean shift.

Expected values come from the reference's formulas worked by hand (the 3-knot not-a-knot spline
is the parabola through its knots; a grey pixel's Lab lightness depends on its luminance only),
not from the functions under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, apply, brightness, get_distortion
from tests.conftest import natural_image

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)  # (H, W, 3) float64, as the registry passes it
RNG = np.random.default_rng(0)  # unused by deterministic types; part of the signature


def _levels(name: str) -> list[float]:
    return list(get_distortion(name).levels)


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


def _batch_of(*images: np.ndarray) -> torch.Tensor:
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return _ops.to_unit_float_batch(u8)  # (B, 3, H, W) float32


def _batch_as_uint8(y: torch.Tensor) -> np.ndarray:
    return _ops.to_uint8_batch(_ops.mapmm_batch(y)).permute(0, 2, 3, 1).numpy()


def _parabola(x, c):
    """The reference's scalar ``curves``: the parabola through (0, 0), (0.5, c), (1, 1)."""
    return np.clip((2.0 - 4.0 * c) * x**2 + (4.0 * c - 1.0) * x, 0.0, 1.0)


def _srgb_lightness(g):
    """CIE L* of an sRGB grey g (R = G = B = g): depends on the luminance Y only."""
    y = g / 12.92 if g <= 0.04045 else ((g + 0.055) / 1.055) ** 2.4
    f = y ** (1 / 3) if y > (6 / 29) ** 3 else y / (3 * (6 / 29) ** 2) + 4 / 29
    return 116.0 * f - 16.0


def _srgb_grey_of_lightness(lightness):
    """Inverse of ``_srgb_lightness``."""
    f = (lightness + 16.0) / 116.0
    y = f**3 if f > 6 / 29 else 3 * (6 / 29) ** 2 * (f - 4 / 29)
    return 12.92 * y if y <= 0.0031308 else 1.055 * y ** (1 / 2.4) - 0.055


def _grey_image(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(1, -1, 1)
    return np.repeat(v, 3, axis=2)  # (1, N, 3) grey pixels


# ---------------------------------------------------------------------------------------------
# 16 brighten
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0.1, 0.4, 1.1])
def test_brighten_on_grey_is_the_rgb_curve_blended_with_the_lab_lightness_curve(amount):
    # imbrighten on RGB: (2 * curve(I) + lab2rgb(curve(L/100) * 100)) / 3 with the curve's
    # midpoint at 0.5 + amount / 2.
    greys = [0.0, 0.1, 0.25, 0.5, 0.8, 1.0]
    c = 0.5 + amount / 2
    out = brightness.brighten(_grey_image(greys), amount, RNG)
    for k, g in enumerate(greys):
        lab_part = _srgb_grey_of_lightness(_parabola(_srgb_lightness(g) / 100.0, c) * 100.0)
        expected = (2.0 * _parabola(g, c) + np.clip(lab_part, 0, 1)) / 3.0
        np.testing.assert_allclose(out[0, k], expected, atol=2e-4)


def test_brighten_keeps_grey_grey_and_stays_in_unit_range():
    out = brightness.brighten(_grey_image(np.linspace(0, 1, 11)), 0.7, RNG)
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-4)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-4)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_brighten_differs_from_the_plain_rgb_curve_on_colour_images():
    # The Lab third of the blend is what distinguishes imbrighten from a plain RGB curve.
    amount = 0.4
    plain = _ops.curves(X, 0.5 + amount / 2)
    assert np.abs(brightness.brighten(X, amount, RNG) - plain).max() > 0.01


def test_brighten_mean_grows_with_level():
    means = [brightness.brighten(X, a, RNG).mean() for a in _levels("brighten")]
    assert all(np.diff(means) > 0), means
    assert means[0] > X.mean()


# ---------------------------------------------------------------------------------------------
# 17 darken
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0.05, 0.2, 0.8])
def test_darken_is_the_rgb_curve_alone_without_lab_blend(amount):
    # The generator calls imdarken(I, amount) without dolab: no Lab blend.
    greys = np.linspace(0, 1, 9)
    out = brightness.darken(_grey_image(greys), amount, RNG)
    np.testing.assert_allclose(out[0, :, 0], _parabola(greys, 0.5 - amount / 2), atol=1e-12)
    np.testing.assert_allclose(brightness.darken(X, amount, RNG), _ops.curves(X, 0.5 - amount / 2))


def test_darken_mean_falls_with_level():
    means = [brightness.darken(X, a, RNG).mean() for a in _levels("darken")]
    assert all(np.diff(means) < 0), means
    assert means[0] < X.mean()


# ---------------------------------------------------------------------------------------------
# 18 mean shift
# ---------------------------------------------------------------------------------------------


def test_mean_shift_adds_and_clips():
    x = _grey_image([0.0, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(brightness.mean_shift(x, 0.15, RNG)[0, :, 0], [0.15, 0.65, 1, 1])
    np.testing.assert_allclose(brightness.mean_shift(x, -0.15, RNG)[0, :, 0], [0, 0.35, 0.75, 0.85])


def test_mean_shift_level_3_returns_the_input_through_the_registry():
    assert get_distortion("mean_shift").param(3) == 0.0
    full_range = IMAGE.copy()
    full_range.flat[0], full_range.flat[1] = 0, 255  # mapmm is then the identity on uint8
    np.testing.assert_array_equal(apply(full_range, "mean_shift", 3), full_range)


def test_mean_shift_error_is_not_monotonic_in_level():
    # Levels go +0.15, +0.08, 0, -0.08, -0.15 (KADID orders them by perceived quality): the
    # error from the input is zero at level 3 and grows towards both ends.
    ref = _as_uint8(X).astype(float)
    err = [
        np.abs(_as_uint8(brightness.mean_shift(X, s, RNG)) - ref).mean()
        for s in _levels("mean_shift")
    ]
    assert err[2] == 0.0
    assert err[0] > err[1] > 0.0 and err[4] > err[3] > 0.0


# ---------------------------------------------------------------------------------------------
# Both paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["brighten", "darken", "mean_shift"])
def test_batch_matches_single_within_one_grey_level(name):
    impl = brightness.IMPLEMENTATIONS[name]
    images = [IMAGE, natural_image(64, 80, seed=4)]
    xb = _batch_of(*images)
    for param in _levels(name):
        got = _batch_as_uint8(impl.batch(xb, param, torch.Generator()))
        for k, img in enumerate(images):
            want = _as_uint8(impl.single(_ops.to_unit_float(img), param, RNG))
            assert np.abs(got[k].astype(int) - want).max() <= 1, (name, param)


def test_implementations_are_deterministic_and_named_as_in_the_table():
    assert set(brightness.IMPLEMENTATIONS) == {"brighten", "darken", "mean_shift"}
    assert not any(impl.stochastic for impl in brightness.IMPLEMENTATIONS.values())
