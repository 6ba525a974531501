"""Spatial family (KADID types 19-23): warps, patch copies, nearest resizes, Otsu levels, blocks.

The jitter warp is checked against a slow, literal emulation of the reference (``padarray`` with
the margins as the reference pairs them, then interp2 'cubic' on the extended grid); pixelate
against MATLAB ``imresize`` results worked by hand; the Otsu dynamic programme against brute
force.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, apply, apply_batch, get_distortion, spatial
from tests.conftest import natural_image

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)  # (H, W, 3) float64, as the registry passes it


def _levels(name: str) -> list[float]:
    return list(get_distortion(name).levels)


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


def _batch_of(*images: np.ndarray) -> torch.Tensor:
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return _ops.to_unit_float_batch(u8)  # (B, 3, H, W) float32


def _batch_as_uint8(y: torch.Tensor) -> np.ndarray:
    return _ops.to_uint8_batch(_ops.mapmm_batch(y)).permute(0, 2, 3, 1).numpy()


def _gen(seed: int) -> torch.Generator:
    return _ops.torch_generator(seed, torch.device("cpu"))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# 19 jitter: the bicubic warp
# ---------------------------------------------------------------------------------------------


def _keys(d: float) -> float:
    """Keys' cubic convolution kernel, a = -0.5."""
    d = abs(d)
    if d <= 1:
        return 1.5 * d**3 - 2.5 * d**2 + 1
    if d < 2:
        return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    return 0.0


def _reference_warp(img: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """imwarpmap(img, [sy sx], 'bicubic', true), literally: pad, extend, convolve, crop.

    NaN where the reference's interp2 would sample outside the padded grid.
    """
    h, w, c = img.shape
    pad_rows = math.ceil(np.abs(sx).max())  # padarray(im, [max|sx| max|sy|]): as written
    pad_cols = math.ceil(np.abs(sy).max())
    p = np.pad(img, ((pad_rows, pad_rows), (pad_cols, pad_cols), (0, 0)), mode="edge")
    hp, wp = p.shape[:2]
    # Cubic convolution's boundary condition: one more sample each side, f(-1) = 3f0 - 3f1 + f2.
    e = np.zeros((hp + 2, wp + 2, c))
    e[1:-1, 1:-1] = p
    e[0, 1:-1] = 3 * p[0] - 3 * p[1] + p[2]
    e[-1, 1:-1] = 3 * p[-1] - 3 * p[-2] + p[-3]
    e[:, 0] = 3 * e[:, 1] - 3 * e[:, 2] + e[:, 3]
    e[:, -1] = 3 * e[:, -2] - 3 * e[:, -3] + e[:, -4]
    out = np.full_like(img, np.nan)
    for r in range(h):
        for col in range(w):
            pr, pc = r + pad_rows - sy[r, col], col + pad_cols - sx[r, col]
            if not (0 <= pr <= hp - 1 and 0 <= pc <= wp - 1):
                continue
            r0, c0 = math.floor(pr), math.floor(pc)
            acc = np.zeros(c)
            for i in range(-1, 3):
                for j in range(-1, 3):
                    wt = _keys(pr - (r0 + i)) * _keys(pc - (c0 + j))
                    if wt:
                        acc += wt * e[r0 + i + 1, c0 + j + 1]
            out[r, col] = acc
    return out


def _warp_np(img: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """The module's NumPy warp on an (H, W, C) image."""
    chw = np.ascontiguousarray(img.transpose(2, 0, 1))
    return spatial._warp_cubic_np(chw, sy, sx).transpose(1, 2, 0)


def test_keys_weights_are_catmull_rom():
    w = [float(v) for v in spatial._keys_weights(np.float64(0.5))]
    np.testing.assert_allclose(w, [-1 / 16, 9 / 16, 9 / 16, -1 / 16], atol=1e-15)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(sum(spatial._keys_weights(t)), 1.0, atol=1e-15)
    np.testing.assert_allclose(spatial._keys_weights(t)[1], [_keys(v) for v in t], atol=1e-15)


@pytest.mark.parametrize("amount", [0.05, 0.3, 1.0, 2.5])
def test_warp_matches_a_literal_emulation_of_the_reference(amount):
    # Small margins exercise the extended-grid boundary taps; amount 2.5 makes the row and
    # column margins differ, exercising the swapped padarray margins.
    rng = _rng(int(amount * 100))
    img = rng.random((9, 11, 3))
    sy, sx = rng.standard_normal((2, 9, 11)) * amount
    want = _reference_warp(img, sy, sx)
    got = _warp_np(img, sy, sx)
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-12)


def test_warp_clamps_where_the_reference_would_give_nan():
    img = np.random.default_rng(1).random((6, 7, 3))
    sy = np.zeros((6, 7))
    sx = np.zeros((6, 7))
    sx[2, 3] = 0.4  # row margin ceil(0.4) = 1 ...
    sy[0, 2] = 1.7  # ... so this row-0 sample (row -1.7) lies outside the padded grid
    want = _reference_warp(img, sy, sx)
    assert np.isnan(want[0, 2]).all() and np.isnan(want).sum() == 3
    np.testing.assert_allclose(_warp_np(img, sy, sx)[0, 2], img[0, 2], atol=1e-12)


def test_zero_and_integer_shifts():
    img = np.random.default_rng(2).random((12, 10, 3))
    zero = np.zeros((12, 10))
    np.testing.assert_allclose(_warp_np(img, zero, zero), img, atol=1e-12)
    # out(r, c) = img(r - sy, c - sx): a shift of +1 row moves content down by one row.
    got = _warp_np(img, zero + 1.0, zero - 2.0)
    np.testing.assert_allclose(got[1:, :-2], img[:-1, 2:], atol=1e-12)


def test_warp_reproduces_a_quadratic_ramp_away_from_the_border():
    # Keys a = -0.5 is exact for polynomials up to degree 2.
    rr, cc = np.mgrid[0:20, 0:20].astype(np.float64)
    ramp = (0.001 * rr**2 + 0.01 * cc)[..., None].repeat(3, axis=2)
    sy, sx = np.full((20, 20), 0.37), np.full((20, 20), -0.81)
    got = _warp_np(ramp, sy, sx)
    want = 0.001 * (rr - 0.37) ** 2 + 0.01 * (cc + 0.81)
    np.testing.assert_allclose(got[3:-3, 3:-3, 1], want[3:-3, 3:-3], atol=1e-12)


def test_torch_warp_matches_numpy_warp_in_blocks(monkeypatch):
    rng = _rng(3)
    imgs = rng.random((2, 3, 23, 17))
    shifts = rng.standard_normal((2, 2, 23, 17)) * np.array([0.1, 1.3]).reshape(2, 1, 1, 1)
    want = np.stack([spatial._warp_cubic_np(imgs[k], *shifts[k]) for k in range(2)])
    # Force several row blocks in both implementations (the production sizes give one here).
    monkeypatch.setattr(spatial, "_WARP_BLOCK_PIXELS", 17 * 5)
    monkeypatch.setattr(spatial, "_WARP_BLOCK_PIXELS_TORCH_CPU", 2 * 17 * 4)
    blocked = np.stack([spatial._warp_cubic_np(imgs[k], *shifts[k]) for k in range(2)])
    got = spatial._warp_cubic_torch(
        torch.from_numpy(imgs), torch.from_numpy(shifts[:, 0]), torch.from_numpy(shifts[:, 1])
    ).numpy()
    np.testing.assert_allclose(blocked, want, atol=1e-12)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_jitter_error_grows_with_level_and_seed_fixes_the_output():
    # Measured before mapmm: the cubic warp overshoots [0, 1] (the reference does not clip), so
    # the final min-max stretch adds a global contrast change that blurs the level ordering of
    # the uint8 error for some draws.
    err = [np.abs(spatial.jitter(X, a, _rng(5)) - X).mean() for a in _levels("jitter")]
    assert all(np.diff(err) > 0), err
    np.testing.assert_array_equal(spatial.jitter(X, 0.5, _rng(5)), spatial.jitter(X, 0.5, _rng(5)))
    assert not np.array_equal(spatial.jitter(X, 0.5, _rng(5)), spatial.jitter(X, 0.5, _rng(6)))


# ---------------------------------------------------------------------------------------------
# 20 non-eccentricity patch
# ---------------------------------------------------------------------------------------------


def test_patch_positions_follow_the_reference_ranges():
    h, w = 64, 80
    lo = spatial._patch_positions(h, w, np.zeros(4))
    hi = spatial._patch_positions(h, w, np.ones(4))
    # 1-based start = round(u * (n - 48)) + 16: 0-based 15 .. n - 33. Destination: start
    # moved by round((u - 0.5) * 16): -8 .. +8.
    assert [int(v) for v in lo] == [15, 15, 15 - 8, 15 - 8]
    assert [int(v) for v in hi] == [h - 33, w - 33, h - 33 + 8, w - 33 + 8]


def test_one_patch_is_copied_from_the_input_and_nothing_else_changes():
    rng = _rng(7)
    draws = _rng(7).random((1, 4))
    sr, sc, dr, dc = (int(v[0]) for v in spatial._patch_positions(64, 80, draws))
    out = spatial.non_eccentricity_patch(X, 1, rng)
    np.testing.assert_array_equal(out[dr : dr + 16, dc : dc + 16], X[sr : sr + 16, sc : sc + 16])
    outside = np.ones((64, 80), bool)
    outside[dr : dr + 16, dc : dc + 16] = False
    np.testing.assert_array_equal(out[outside], X[outside])


def test_small_images_keep_patches_inside():
    x = np.random.default_rng(0).random((20, 12, 3))
    out = spatial.non_eccentricity_patch(x, 50, _rng(0))
    assert out.shape == x.shape
    xb = torch.from_numpy(x.transpose(2, 0, 1)[None]).float()
    assert spatial.non_eccentricity_patch_batch(xb, 50, _gen(0)).shape == xb.shape


def test_changed_area_grows_with_level():
    changed = [
        (np.abs(spatial.non_eccentricity_patch(X, n, _rng(1)) - X).max(axis=2) > 0).mean()
        for n in _levels("non_eccentricity_patch")
    ]
    assert all(np.diff(changed) > 0), changed


# ---------------------------------------------------------------------------------------------
# 21 pixelate
# ---------------------------------------------------------------------------------------------


def test_imresize_nearest_indices_match_matlab():
    # imresize(1:10, 0.5, 'nearest') = [2 4 6 8 10]; imresize(1:5, [1 10], 'nearest') =
    # [1 1 2 2 3 3 4 4 5 5] (1-based).
    np.testing.assert_array_equal(spatial._imresize_nearest_index(10, 5, 0.5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(
        spatial._imresize_nearest_index(5, 10, 2.0), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    )
    np.testing.assert_array_equal(spatial._imresize_nearest_index(7, 7, 1.0), np.arange(7))


def test_imresize_nearest_mirrors_past_the_end():
    # z = 0.95 - 0.5^0.6 on 4 pixels: 2 outputs; the second maps to u = 5.67 -> pixel 6 of 4,
    # which imresize's symmetric extension folds back to pixel 3 (0-based 2), not 4.
    z = 0.95 - 0.5**0.6
    np.testing.assert_array_equal(spatial._imresize_nearest_index(4, 2, z), [1, 2])


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.1, 0.2, 0.5])
def test_pixelate_samples_the_input_on_a_grid_of_ceil_z_times_size_cells(ratio):
    z = 0.95 - ratio**0.6
    h, w = X.shape[:2]
    for n in (h, w):
        index = spatial._pixelate_index(n, ratio)
        assert (np.diff(index) >= 0).all()
        # At most ceil(z * n) cells; fewer when the far end's mirrored index repeats a pixel.
        cells = 1 + np.count_nonzero(np.diff(index))
        assert math.ceil(z * n) - 1 <= cells <= math.ceil(z * n)
    idx_r, idx_c = spatial._pixelate_index(h, ratio), spatial._pixelate_index(w, ratio)
    np.testing.assert_array_equal(spatial.pixelate(X, ratio, _rng(0)), X[idx_r][:, idx_c])


def test_pixelate_error_is_not_monotonic_in_level():
    # Nearest-neighbour grids alias: the share of pixels that keep their own value does not
    # fall steadily with the level (here on a 96-pixel axis level 4 keeps more than level 3).
    kept = [np.mean(spatial._pixelate_index(96, r) == np.arange(96)) for r in _levels("pixelate")]
    assert kept[3] > kept[2]
    assert kept[4] == min(kept)


# ---------------------------------------------------------------------------------------------
# 22 quantization
# ---------------------------------------------------------------------------------------------


def _brute_force_thresholds(hist: np.ndarray, n: int) -> tuple[int, ...]:
    bins = np.arange(len(hist))
    best, arg = -np.inf, None
    for ts in itertools.combinations(range(len(hist) - 1), n):
        edges = [-1, *ts, len(hist) - 1]
        score = 0.0
        for a, b in itertools.pairwise(edges):
            wgt = hist[a + 1 : b + 1].sum()
            if wgt > 0:
                score += (hist[a + 1 : b + 1] * bins[a + 1 : b + 1]).sum() ** 2 / wgt
        if score > best + 1e-9:
            best, arg = score, ts
    return arg


@pytest.mark.parametrize("n", [1, 2, 3])
def test_otsu_dynamic_programme_finds_the_brute_force_optimum(n):
    rng = _rng(n)
    hists = rng.integers(1, 50, size=(4, 14)).astype(float)  # no empty bins: no ties
    got = spatial._otsu_thresholds(hists, n)
    for hist, ts in zip(hists, got, strict=True):
        assert tuple(int(t) for t in ts) == _brute_force_thresholds(hist, n)


def test_one_level_otsu_splits_two_modes():
    hist = np.zeros(256)
    hist[40:60] = 5
    hist[180:200] = 5
    t = int(spatial._otsu_thresholds(hist[None], 1)[0, 0])
    assert 59 <= t < 180


def test_quantization_maps_to_the_reference_values():
    n = 7
    out = spatial.quantization(X, n, _rng(0))
    hist = np.bincount(spatial._bin_index_np(X.ravel(), 0.0, 1.0), minlength=256)
    t = spatial._otsu_thresholds(hist[None], n)[0] / 255.0
    values = np.unique(out)
    assert len(values) <= n + 1
    assert values[0] == 0.0 and values[-1] == 1.0
    np.testing.assert_allclose(values[1:-1], t[1:])  # [0, t2 .. tn, 1]
    assert (out[X <= t[0]] == 0).all() and (out[X > t[-1]] == 1).all()
    inside = (X > t[2]) & (X <= t[3])
    np.testing.assert_allclose(out[inside], t[3])


def test_quantization_error_falls_with_more_levels():
    ref = _as_uint8(X).astype(float)
    err = [
        np.abs(_as_uint8(spatial.quantization(X, n, _rng(0))) - ref).mean()
        for n in _levels("quantization")
    ]
    assert all(np.diff(err) > 0), err  # levels go 20 .. 7 thresholds


def test_quantization_batch_equals_single_on_tie_prone_images():
    # A span of 170 grey levels puts many values exactly half-way between histogram bins and
    # exactly on thresholds; float32 (batch) and float64 (single) must still agree.
    narrow = (IMAGE.astype(int) * 170 // 255 + 40).astype(np.uint8)
    images = [IMAGE, narrow, natural_image(64, 80, seed=9)]
    xb = _batch_of(*images)
    for n in _levels("quantization"):
        got = _batch_as_uint8(spatial.quantization_batch(xb, n, _gen(0)))
        for k, img in enumerate(images):
            want = _as_uint8(spatial.quantization(_ops.to_unit_float(img), n, _rng(0)))
            np.testing.assert_array_equal(got[k], want)


def test_quantization_leaves_a_constant_image_alone():
    x = np.full((8, 8, 3), 0.5)
    np.testing.assert_array_equal(spatial.quantization(x, 7, _rng(0)), x)
    xb = torch.full((1, 3, 8, 8), 0.5)
    assert torch.equal(spatial.quantization_batch(xb, 7, _gen(0)), xb)


def test_quantization_rejects_impossible_level_counts():
    with pytest.raises(ValueError, match="levels"):
        spatial.quantization(X, 0, _rng(0))
    with pytest.raises(ValueError, match="levels"):
        spatial.quantization(X, 7.5, _rng(0))


# ---------------------------------------------------------------------------------------------
# 23 colour block
# ---------------------------------------------------------------------------------------------


def test_block_corners_round_the_one_based_position():
    # x = u * (w - 32) is 1-based and rounded by insertShape: 0-based start round(x) - 1.
    row, col = spatial._block_corners(64, 80, np.array([0, 0, 0, 0.0, 1.0]))
    assert (int(row), int(col)) == (64 - 33, -1)
    row, col = spatial._block_corners(64, 80, np.array([0, 0, 0, 10.6 / 48, 0.3 / 32]))
    assert (int(row), int(col)) == (-1, 10)


def test_one_block_is_a_32_pixel_square_of_the_drawn_colour():
    draws = _rng(3).random((1, 5))
    row, col = (int(v[0]) for v in spatial._block_corners(64, 80, draws))
    out = spatial.color_block(X, 1, _rng(3))
    r0, c0 = max(row, 0), max(col, 0)
    block = out[r0 : row + 32, c0 : col + 32]
    np.testing.assert_array_equal(block, np.broadcast_to(draws[0, :3], block.shape))
    changed = np.zeros((64, 80), bool)
    changed[r0 : row + 32, c0 : col + 32] = True
    np.testing.assert_array_equal(out[~changed], X[~changed])


class _FixedDraws:
    """A stand-in Generator whose ``random`` returns the given values."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def random(self, shape):
        return np.broadcast_to(self.values, shape).copy()


def test_block_at_the_top_left_loses_a_row_and_a_column():
    out = spatial.color_block(X, 1, _FixedDraws([0.2, 0.4, 0.6, 0.0, 0.0]))
    painted = np.all(out == [0.2, 0.4, 0.6], axis=2)
    assert painted.sum() == 31 * 31 and painted[:31, :31].all()


def test_painted_area_grows_with_level():
    painted = [
        (np.abs(spatial.color_block(X, n, _rng(2)) - X).max(axis=2) > 0).mean()
        for n in _levels("color_block")
    ]
    assert all(np.diff(painted) > 0), painted


# ---------------------------------------------------------------------------------------------
# Both paths, through the registry
# ---------------------------------------------------------------------------------------------

STOCHASTIC = ["jitter", "non_eccentricity_patch", "color_block"]


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_types_repeat_with_a_seed_and_differ_per_image(name):
    images = torch.from_numpy(np.stack([IMAGE, IMAGE])).permute(0, 3, 1, 2).contiguous()
    a = apply_batch(images, name, 3, seed=11)
    assert torch.equal(a, apply_batch(images, name, 3, seed=11))
    assert not torch.equal(a[0], a[1])  # each image draws its own randomness
    np.testing.assert_array_equal(apply(IMAGE, name, 3, seed=4), apply(IMAGE, name, 3, seed=4))
    assert not np.array_equal(apply(IMAGE, name, 3, seed=4), apply(IMAGE, name, 3, seed=5))


@pytest.mark.parametrize("name", ["pixelate", "quantization"])
def test_deterministic_types_batch_matches_single(name):
    images = [IMAGE, natural_image(64, 80, seed=4)]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    for level in range(1, 6):
        got = apply_batch(batch, name, level).permute(0, 2, 3, 1).numpy()
        for k, img in enumerate(images):
            assert np.abs(got[k].astype(int) - apply(img, name, level)).max() <= 1


def test_batch_paths_draw_on_the_images_device():
    xb = _batch_of(IMAGE)
    for name in STOCHASTIC:
        impl = spatial.IMPLEMENTATIONS[name]
        assert impl.stochastic and impl.batch is not None
        out = impl.batch(xb, get_distortion(name).param(2), _gen(0))
        assert out.shape == xb.shape and out.dtype == xb.dtype and out.device == xb.device


def test_invalid_parameters_name_the_argument():
    with pytest.raises(ValueError, match="ratio"):
        spatial.pixelate(X, 0.95, _rng(0))  # z = 0.95 - 0.95^0.6 < 0
    with pytest.raises(ValueError, match="patches"):
        spatial.non_eccentricity_patch(X, -1, _rng(0))
    with pytest.raises(ValueError, match="blocks"):
        spatial.color_block(X, 2.5, _rng(0))
