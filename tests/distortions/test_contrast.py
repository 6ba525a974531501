"""Contrast family (KADID type 25): the 5-knot tone curve of ``imcontrastc``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, contrast, get_distortion
from tests.conftest import natural_image

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)
RNG = np.random.default_rng(0)
LEVELS = list(get_distortion("contrast_change").levels)


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


@pytest.mark.parametrize("amount", LEVELS)
def test_curve_passes_through_the_reference_knots(amount):
    # curves(I, [lo hi]) knots: (0, 0), (0.3, lo), (0.5, 0.5), (0.7, hi), (1, 1).
    knots_x = np.array([0.0, 0.3, 0.5, 0.7, 1.0]).reshape(1, 5, 1).repeat(3, axis=2)
    out = contrast.contrast_change(knots_x, amount, RNG)[0, :, 0]
    expected = [0.0, 0.25 - amount / 4, 0.5, 0.75 + amount / 4, 1.0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_amount_zero_is_not_the_identity():
    # Knot (0.3, 0.25) with amount 0: a quirk of the reference, kept.
    x = np.full((2, 2, 3), 0.3)
    np.testing.assert_allclose(contrast.contrast_change(x, 0.0, RNG), 0.25, atol=1e-12)
    assert np.abs(_as_uint8(contrast.contrast_change(X, 0.0, RNG)) - _as_uint8(X)).max() > 5


def test_positive_amount_raises_contrast_and_negative_lowers_it():
    std_in = X.std()
    assert contrast.contrast_change(X, 0.3, RNG).std() > std_in
    assert contrast.contrast_change(X, -0.6, RNG).std() < std_in


def test_output_is_clipped_to_unit_range():
    x = np.linspace(0, 1, 301).reshape(1, -1, 1).repeat(3, axis=2)
    for amount in LEVELS + [1.0, -1.0]:
        out = contrast.contrast_change(x, amount, RNG)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_error_is_not_monotonic_in_level():
    # Levels +0.3, +0.15, 0, -0.4, -0.6: the error falls towards amount 0 (not zero there,
    # see above) and rises again; KADID orders the levels by perceived quality.
    ref = _as_uint8(X).astype(float)
    err = [np.abs(_as_uint8(contrast.contrast_change(X, a, RNG)) - ref).mean() for a in LEVELS]
    assert err[0] > err[1] > err[2] > 0
    assert err[4] > err[3]


def test_batch_matches_single_within_one_grey_level():
    images = [IMAGE, natural_image(64, 80, seed=4)]
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    xb = _ops.to_unit_float_batch(u8)
    for amount in LEVELS:
        got = contrast.contrast_change_batch(xb, amount, torch.Generator())
        got = _ops.to_uint8_batch(_ops.mapmm_batch(got)).permute(0, 2, 3, 1).numpy()
        for k, img in enumerate(images):
            want = _as_uint8(contrast.contrast_change(_ops.to_unit_float(img), amount, RNG))
            assert np.abs(got[k].astype(int) - want).max() <= 1, amount
