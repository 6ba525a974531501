"""KADID compression family (9 JPEG 2000, 10 JPEG): codec settings and strength per level."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin

from dgqa_ray.distortions import apply, apply_batch, get_distortion
from dgqa_ray.distortions._ops import mapmm, to_uint8, to_unit_float
from dgqa_ray.distortions.compression import (
    _jpeg2000_main_header_bytes,
    encode_jpeg,
    encode_jpeg2000,
    jpeg,
    jpeg2000,
)
from tests.conftest import natural_image

IMAGE = natural_image(96, 128, seed=3)  # (96, 128, 3) uint8
X = to_unit_float(IMAGE)  # what the registry hands the distortion
RNG = np.random.default_rng(0)  # unused by the deterministic codecs


@pytest.mark.parametrize("ratio", get_distortion("jpeg2000").levels)
def test_jpeg2000_data_after_the_header_is_raw_size_over_ratio(ratio):
    # MATLAB's CompressionRatio leaves the header out of the count.
    data = encode_jpeg2000(IMAGE, ratio)
    body = len(data) - _jpeg2000_main_header_bytes(*IMAGE.shape[:2])
    target = IMAGE.size / ratio
    # OpenJPEG's rate control lands within a few percent; at ratio 400 (92 bytes here) the
    # tile-part header and end marker (14 bytes) are a visible share of the budget.
    assert abs(body - target) <= 0.05 * target + 16


def test_jpeg2000_is_lossy_9_7_with_colour_transform():
    data = encode_jpeg2000(IMAGE, 16)
    cod = data.index(b"\xff\x52")  # COD marker segment: Lcod(2) Scod(1) SGcod(4) SPcod(5+)
    multiple_component_transform = data[cod + 8]
    wavelet = data[cod + 13]  # 0: irreversible 9/7, 1: reversible 5/3
    assert multiple_component_transform == 1
    assert wavelet == 0


def test_jpeg2000_error_grows_with_level():
    errors = [np.abs(jpeg2000(X, r, RNG) - X).mean() for r in get_distortion(9).levels]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors


def test_jpeg_error_grows_with_level():
    errors = [np.abs(jpeg(X, q, RNG) - X).mean() for q in get_distortion(10).levels]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors


def test_jpeg_uses_4_2_0_chroma_subsampling_and_the_requested_quality():
    data = encode_jpeg(IMAGE, 24)
    decoded = Image.open(io.BytesIO(data))
    assert JpegImagePlugin.get_sampling(decoded) == 2  # 4:2:0
    # IJG quality 24 scales the standard tables by 5000 // 24 = 208 %: luminance DC 16 -> 33,
    # chrominance DC 17 -> 35.
    assert decoded.quantization[0][0] == (16 * (5000 // 24) + 50) // 100
    assert decoded.quantization[1][0] == (17 * (5000 // 24) + 50) // 100


def test_codecs_see_im2uint8_and_return_multiples_of_1_255():
    for fn, param in ((jpeg, 24), (jpeg2000, 45)):
        out = fn(X, param, RNG)
        assert out.shape == X.shape and out.dtype == np.float64
        np.testing.assert_allclose(out * 255.0, np.round(out * 255.0), atol=1e-9)
    flat = np.full((16, 16, 3), 0.5)  # im2uint8(0.5) = 128
    np.testing.assert_array_equal(np.round(jpeg(flat, 43, RNG) * 255.0), 128)
    np.testing.assert_array_equal(np.round(jpeg2000(flat, 16, RNG) * 255.0), 128)


def test_mild_settings_are_close_to_the_input():
    # JPEG quality 100 still halves the chroma resolution (4:2:0): ~2.7 grey levels here.
    assert np.abs(jpeg(X, 100, RNG) - X).mean() < 3.5 / 255.0
    assert np.abs(jpeg2000(X, 2, RNG) - X).mean() < 1.5 / 255.0


@pytest.mark.parametrize("shape", [(2, 2, 3), (3, 17, 3), (41, 33, 3)])
def test_small_and_odd_sizes_round_trip(shape):
    x = np.random.default_rng(1).random(shape)
    assert jpeg2000(x, 400, RNG).shape == shape
    assert jpeg(x, 4, RNG).shape == shape


def test_codecs_are_deterministic():
    np.testing.assert_array_equal(jpeg2000(X, 120, RNG), jpeg2000(X, 120, RNG))
    np.testing.assert_array_equal(jpeg(X, 7, RNG), jpeg(X, 7, RNG))


def test_bad_parameters_name_the_argument():
    with pytest.raises(ValueError, match="ratio"):
        encode_jpeg2000(IMAGE, 0.5)
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(IMAGE, 101)


@pytest.mark.parametrize(("dist_type", "fn"), [(9, jpeg2000), (10, jpeg)])
def test_registry_applies_mapmm_codec_mapmm(dist_type, fn):
    dist = get_distortion(dist_type)
    assert not dist.stochastic and not dist.has_batch_kernel
    expected = to_uint8(mapmm(fn(X, dist.param(4), RNG)))
    np.testing.assert_array_equal(apply(IMAGE, dist_type, level=4), expected)


@pytest.mark.parametrize("dist_type", [9, 10])
def test_registry_runs_the_codec_per_image_for_batches(dist_type):
    images = np.stack([IMAGE, natural_image(96, 128, seed=4)])
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (2, 3, 96, 128)
    out = apply_batch(batch, dist_type, level=4)
    for i, img in enumerate(images):
        expected = apply(img, dist_type, level=4)
        np.testing.assert_array_equal(out[i].permute(1, 2, 0).numpy(), expected)
