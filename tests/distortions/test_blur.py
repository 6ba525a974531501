"""Blur family (KADID types 1-3): kernels as MATLAB ``fspecial`` builds them, and the two paths.

Reference values are MATLAB's documented outputs (``fspecial('motion', 3, 45)``,
``fspecial('disk', 2)``) and exact geometry (pillbox areas).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, blur
from tests.conftest import natural_image

_CSV = Path(blur.__file__).with_name("kadid_distortions.csv")
with _CSV.open() as _fh:
    LEVELS = {
        row["name"]: [float(row[f"level{i}"]) for i in range(1, 6)] for row in csv.DictReader(_fh)
    }

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)  # (H, W, 3) float64, as the registry passes it


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


def _batch_of(*images: np.ndarray) -> torch.Tensor:
    """(B, 3, H, W) float32 in [0, 1], as the registry passes it to the batch functions."""
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return _ops.to_unit_float_batch(u8)


def _batch_as_uint8(y: torch.Tensor) -> np.ndarray:
    return _ops.to_uint8_batch(_ops.mapmm_batch(y)).permute(0, 2, 3, 1).numpy()


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return _ops.torch_generator(seed, torch.device(device))


# ---------------------------------------------------------------------------------------------
# fspecial('disk')
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [1, 2, 4, 6, 8])
def test_disk_kernel_is_a_normalised_symmetric_square_of_side_2r_plus_1(radius):
    k = blur.disk_kernel(radius)
    assert k.shape == (2 * radius + 1, 2 * radius + 1)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    # Squares fully inside the circle (the centre one included) weigh the most: area 1.
    c = radius
    assert k[c, c] == pytest.approx(k.max())
    if radius >= 2:
        assert k[0, 0] == 0.0  # the corner square lies outside the circle


def test_disk_areas_are_exact():
    r = 3.0
    quarter = blur._disk_quadrant_area(np.array([r]), np.array([r]), r)
    assert quarter[0] == pytest.approx(math.pi * r * r / 4, rel=1e-12)
    # Radius 1: centre square fully inside; side squares hold the circle between x=0.5 and
    # the arc for |y| <= 0.5, i.e. integral of (sqrt(1 - y^2) - 0.5) dy over [-0.5, 0.5].
    side = math.sqrt(3) / 4 + math.asin(0.5) - 0.5
    corner = (math.pi - 1 - 4 * side) / 4
    expected = np.array([[corner, side, corner], [side, 1, side], [corner, side, corner]]) / math.pi
    np.testing.assert_allclose(blur.disk_kernel(1), expected, rtol=1e-12)


def test_disk_kernel_matches_matlab_fspecial_disk_2():
    matlab = np.array(  # fspecial('disk', 2), as MATLAB prints it (4 decimals)
        [
            [0.0, 0.0170, 0.0381, 0.0170, 0.0],
            [0.0170, 0.0784, 0.0796, 0.0784, 0.0170],
            [0.0381, 0.0796, 0.0796, 0.0796, 0.0381],
            [0.0170, 0.0784, 0.0796, 0.0784, 0.0170],
            [0.0, 0.0170, 0.0381, 0.0170, 0.0],
        ]
    )
    np.testing.assert_allclose(blur.disk_kernel(2), matlab, atol=5e-5)


def test_disk_kernel_is_cached_and_read_only():
    assert blur.disk_kernel(4) is blur.disk_kernel(4)
    with pytest.raises(ValueError):
        blur.disk_kernel(4)[0, 0] = 1.0


def test_disk_kernel_rejects_a_non_positive_radius():
    with pytest.raises(ValueError, match="radius"):
        blur.disk_kernel(0)


# ---------------------------------------------------------------------------------------------
# fspecial('motion')
# ---------------------------------------------------------------------------------------------


def test_motion_kernel_matches_matlab_documented_example():
    matlab = np.array(  # fspecial('motion', 3, 45)
        [[0.0, 0.0754, 0.1883], [0.0754, 0.3215, 0.0754], [0.1883, 0.0754, 0.0]]
    )
    np.testing.assert_allclose(blur.motion_kernel(3, 45), matlab, atol=5e-5)


def test_motion_kernel_horizontal_and_vertical_are_vectors():
    np.testing.assert_allclose(blur.motion_kernel(9, 0), np.full((1, 9), 1 / 9), atol=1e-15)
    np.testing.assert_allclose(blur.motion_kernel(9, 180), blur.motion_kernel(9, 0))
    np.testing.assert_allclose(blur.motion_kernel(2, 0), [[0.25, 0.5, 0.25]], atol=1e-15)
    vertical = blur.motion_kernel(10, 90)
    assert vertical.shape == (11, 1)
    np.testing.assert_allclose(vertical[:, 0], vertical[::-1, 0], atol=1e-15)
    assert vertical[0, 0] == pytest.approx(vertical[-1, 0]) and 0 < vertical[0, 0] < vertical[5, 0]


def test_motion_kernel_angle_is_counter_clockwise():
    # Rows grow downwards: 45 degrees points up-right ("/"), 135 degrees up-left ("\").
    up_right = blur.motion_kernel(6, 45)
    up_left = blur.motion_kernel(6, 135)
    n = up_right.shape[0] - 1
    assert up_right[0, -1] > 0 and up_right[0, 0] == 0
    assert up_left[0, 0] > 0 and up_left[0, n] == 0


@pytest.mark.parametrize("length", [1, 2, 4, 6, 10])
def test_motion_kernel_is_odd_normalised_and_point_symmetric_for_every_angle(length):
    for angle in range(0, 181):
        k = blur.motion_kernel(length, angle)
        assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
        assert max(k.shape) <= length + 2
        assert k.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
        assert (k >= 0).all()


def test_motion_kernel_length_one_is_the_identity_up_to_eps():
    for angle in (0, 45, 90, 135, 180):
        k = blur.motion_kernel(1, angle)
        centre = k[k.shape[0] // 2, k.shape[1] // 2]
        assert centre == pytest.approx(1.0, abs=1e-12)
        assert k.sum() - centre < 1e-12


# ---------------------------------------------------------------------------------------------
# The distortions, single-image path
# ---------------------------------------------------------------------------------------------


def test_gaussian_sigma_0_1_gives_back_the_input():
    out = _as_uint8(blur.gaussian_blur(X, 0.1, np.random.default_rng(0)))
    np.testing.assert_array_equal(out, _as_uint8(X))


def test_motion_length_1_gives_back_the_input():
    for seed in range(5):
        out = _as_uint8(blur.motion_blur(X, 1, np.random.default_rng(seed)))
        np.testing.assert_array_equal(out, _as_uint8(X))


def test_lens_blur_equals_direct_imfilter_for_fft_sized_kernels():
    # Radius >= 3 goes through the FFT; it must equal replicate-padded correlation.
    for radius in (4, 8):
        want = _ops.filter2d(X, blur.disk_kernel(radius))
        got = blur.lens_blur(X, radius, np.random.default_rng(0))
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_blur_keeps_a_constant_image_and_the_mean():
    flat = np.full((20, 24, 3), 0.3)
    rng = np.random.default_rng(0)
    for name in ("gaussian_blur", "lens_blur", "motion_blur"):
        fn = blur.IMPLEMENTATIONS[name].single
        np.testing.assert_allclose(fn(flat, LEVELS[name][-1], rng), flat, atol=1e-12)


@pytest.mark.parametrize("name", ["gaussian_blur", "lens_blur", "motion_blur"])
def test_blur_strength_grows_with_level(name):
    fn = blur.IMPLEMENTATIONS[name].single
    ref = _as_uint8(X).astype(float)
    errors = [
        np.abs(_as_uint8(fn(X, p, np.random.default_rng(1))) - ref).mean() for p in LEVELS[name]
    ]
    assert all(b > a for a, b in zip(errors, errors[1:], strict=False)), errors


def test_motion_angle_is_drawn_from_rng_and_repeats_with_the_seed():
    a = blur.motion_blur(X, 10, np.random.default_rng(4))
    b = blur.motion_blur(X, 10, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    angle = int(np.random.default_rng(4).integers(0, 181))
    np.testing.assert_allclose(a, _ops.filter2d(X, blur.motion_kernel(10, angle)), atol=1e-12)
    outputs = {blur.motion_blur(X, 10, np.random.default_rng(s)).tobytes() for s in range(6)}
    assert len(outputs) > 1


# ---------------------------------------------------------------------------------------------
# Batch path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian_blur", "lens_blur"])
def test_batch_equals_single_within_one_grey_level(name):
    images = [IMAGE, natural_image(64, 80, seed=4)]
    impl = blur.IMPLEMENTATIONS[name]
    for p in LEVELS[name]:
        got = _batch_as_uint8(impl.batch(_batch_of(*images), p, _gen(0)))
        for img, g in zip(images, got, strict=True):
            want = _as_uint8(impl.single(_ops.to_unit_float(img), p, np.random.default_rng(0)))
            assert np.abs(g.astype(int) - want.astype(int)).max() <= 1, (name, p)


def test_motion_batch_uses_one_kernel_per_image():
    images = [natural_image(48, 64, seed=s) for s in range(6)]
    x = _batch_of(*images)
    out = blur.motion_blur_batch(x, 10, _gen(9))
    angles = torch.randint(0, 181, (len(images),), generator=_gen(9)).tolist()
    assert len(set(angles)) > 1
    for i, angle in enumerate(angles):
        want = _ops.filter2d(x[i].permute(1, 2, 0).double().numpy(), blur.motion_kernel(10, angle))
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), want, atol=1e-5)
    again = blur.motion_blur_batch(x, 10, _gen(9))
    assert torch.equal(out, again)


def test_motion_batch_length_1_gives_back_the_input():
    x = _batch_of(IMAGE, natural_image(64, 80, seed=4))
    out = _batch_as_uint8(blur.motion_blur_batch(x, 1, _gen(0)))
    np.testing.assert_array_equal(out, _batch_as_uint8(x))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batch_on_cuda_matches_cpu():
    x = _batch_of(IMAGE, natural_image(64, 80, seed=4))
    for name, impl in blur.IMPLEMENTATIONS.items():
        p = LEVELS[name][-1]
        cpu = _batch_as_uint8(impl.batch(x, p, _gen(0)))
        gpu_out = impl.batch(x.cuda(), p, _gen(0, "cuda"))
        assert gpu_out.device.type == "cuda"
        gpu = _batch_as_uint8(gpu_out.cpu())
        if impl.stochastic:  # CUDA draws differ from CPU draws: check the seed repeats
            again = _batch_as_uint8(impl.batch(x.cuda(), p, _gen(0, "cuda")).cpu())
            np.testing.assert_array_equal(gpu, again)
        else:
            assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 1, name
