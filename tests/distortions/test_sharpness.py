"""Sharpness family (KADID type 24): ``imsharpen`` radius 3 on the Lab lightness, then clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, get_distortion, sharpness
from tests.conftest import natural_image

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)
RNG = np.random.default_rng(0)
LEVELS = list(get_distortion("high_sharpen").levels)


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


def _step_image(lo: float = 0.3, hi: float = 0.7, width: int = 40, edge: int = 20):
    """(8, width, 3) grey image: columns < edge are ``lo``, the others ``hi``."""
    x = np.full((8, width, 3), lo)
    x[:, edge:] = hi
    return x


def test_flat_image_is_unchanged():
    x = np.full((16, 16, 3), 0.4)
    x[..., 1] = 0.6  # a flat colour, not grey
    np.testing.assert_allclose(sharpness.high_sharpen(x, 12.0, RNG), x, atol=1e-9)


def test_gaussian_of_radius_3_reaches_exactly_6_pixels():
    # fspecial('gaussian', 13, 3): a pixel 6 columns from the step sees it, 7 columns does not.
    x = _step_image(edge=20)
    out = sharpness.high_sharpen(x, 2.0, RNG)
    changed = np.abs(out - x).max(axis=(0, 2)) > 1e-9  # per column
    assert changed[20 - 6] and changed[20 + 5]
    assert not changed[: 20 - 6].any() and not changed[20 + 6 :].any()


def test_unsharp_mask_overshoots_on_both_sides_of_an_edge():
    x = _step_image()
    out = sharpness.high_sharpen(x, 1.0, RNG)
    assert out[:, 19].max() < 0.3 - 0.01  # dark side darker
    assert out[:, 20].min() > 0.7 + 0.01  # bright side brighter


def test_only_lightness_is_sharpened():
    # Mid-range colours, mild amount: nothing clips, so Lab a* and b* come back unchanged.
    x = 0.35 + 0.3 * X
    out = sharpness.high_sharpen(x, 1.0, RNG)
    assert 0.0 < out.min() and out.max() < 1.0
    np.testing.assert_allclose(_ops.rgb2lab(out)[..., 1:], _ops.rgb2lab(x)[..., 1:], atol=1e-6)
    assert np.abs(_ops.rgb2lab(out)[..., 0] - _ops.rgb2lab(x)[..., 0]).max() > 1.0


def test_output_is_truncated_to_unit_range():
    out = sharpness.high_sharpen(_step_image(0.05, 0.95), 12.0, RNG)
    assert out.min() == 0.0 and out.max() == 1.0


def test_error_grows_with_level():
    ref = _as_uint8(X).astype(float)
    err = [np.abs(_as_uint8(sharpness.high_sharpen(X, a, RNG)) - ref).mean() for a in LEVELS]
    assert all(np.diff(err) > 0), err


@pytest.mark.parametrize("amount", LEVELS)
def test_batch_matches_single_within_one_grey_level(amount):
    images = [IMAGE, natural_image(64, 80, seed=4)]
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    got = sharpness.high_sharpen_batch(_ops.to_unit_float_batch(u8), amount, torch.Generator())
    got = _ops.to_uint8_batch(_ops.mapmm_batch(got)).permute(0, 2, 3, 1).numpy()
    for k, img in enumerate(images):
        want = _as_uint8(sharpness.high_sharpen(_ops.to_unit_float(img), amount, RNG))
        assert np.abs(got[k].astype(int) - want).max() <= 1
