"""Colour family (KADID types 4-8): colour-space maths, the identities the reference has, the
helpers of ``imcolorshift`` and the minimum-variance quantiser, and the two paths."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from dgqa_ray.distortions import _ops, color
from tests.conftest import natural_image

_CSV = Path(color.__file__).with_name("kadid_distortions.csv")
with _CSV.open() as _fh:
    LEVELS = {
        row["name"]: [float(row[f"level{i}"]) for i in range(1, 6)] for row in csv.DictReader(_fh)
    }

IMAGE = natural_image(64, 80, seed=3)
X = _ops.to_unit_float(IMAGE)  # (H, W, 3) float64, as the registry passes it
DETERMINISTIC_WITH_BATCH = ["color_diffusion", "color_saturation_hsv", "color_saturation_lab"]


def _as_uint8(y: np.ndarray) -> np.ndarray:
    return _ops.to_uint8(_ops.mapmm(y))


def _batch_of(*images: np.ndarray) -> torch.Tensor:
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return _ops.to_unit_float_batch(u8)


def _batch_as_uint8(y: torch.Tensor) -> np.ndarray:
    return _ops.to_uint8_batch(_ops.mapmm_batch(y)).permute(0, 2, 3, 1).numpy()


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return _ops.torch_generator(seed, torch.device(device))


# ---------------------------------------------------------------------------------------------
# HSV
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rgb, hsv",
    [
        ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)),
        ((0.0, 1.0, 0.0), (1 / 3, 1.0, 1.0)),
        ((0.0, 0.0, 0.5), (2 / 3, 1.0, 0.5)),
        ((0.5, 0.25, 0.0), (1 / 12, 1.0, 0.5)),
        ((1.0, 0.0, 0.5), (11 / 12, 1.0, 1.0)),  # negative raw hue wraps to [0, 1)
        ((0.4, 0.4, 0.4), (0.0, 0.0, 0.4)),  # grey: hue 0, saturation 0
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),  # black
        ((0.8, 0.8, 0.2), (1 / 6, 0.75, 0.8)),  # red and green tie for the maximum
    ],
)
def test_rgb2hsv_known_values(rgb, hsv):
    np.testing.assert_allclose(color.rgb2hsv(np.array(rgb)), hsv, atol=1e-12)
    got = color.rgb2hsv_batch(torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1))
    np.testing.assert_allclose(got.view(3).numpy(), hsv, atol=1e-12)
    np.testing.assert_allclose(color.hsv2rgb(np.array(hsv)), rgb, atol=1e-12)


def test_hsv_round_trip_numpy_and_torch():
    rgb = np.random.default_rng(0).random((16, 16, 3))
    np.testing.assert_allclose(color.hsv2rgb(color.rgb2hsv(rgb)), rgb, atol=1e-12)
    t = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    hsv = color.rgb2hsv_batch(t)
    np.testing.assert_allclose(hsv[0].permute(1, 2, 0).numpy(), color.rgb2hsv(rgb), atol=1e-12)
    np.testing.assert_allclose(color.hsv2rgb_batch(hsv).numpy(), t.numpy(), atol=1e-12)


def test_hsv_saturation_scaling_moves_each_channel_towards_the_maximum():
    # With v = max channel, scaling S by f maps every channel c to v + f (c - v): 0 gives grey
    # at the maximum, negative f goes past it (values above v, not clipped).
    for factor in LEVELS["color_saturation_hsv"]:
        out = color.color_saturation_hsv(X, factor, np.random.default_rng(0))
        v = X.max(axis=-1, keepdims=True)
        np.testing.assert_allclose(out, v + factor * (X - v), atol=1e-12)
    negative = color.color_saturation_hsv(X, -0.4, np.random.default_rng(0))
    assert negative.max() > 1.0


def test_hsv_saturation_factor_one_gives_back_the_input():
    out = _as_uint8(color.color_saturation_hsv(X, 1.0, np.random.default_rng(0)))
    np.testing.assert_array_equal(out, _as_uint8(X))


# ---------------------------------------------------------------------------------------------
# LAB types (4 color_diffusion, 8 color_saturation_lab)
# ---------------------------------------------------------------------------------------------


def test_lab_saturation_factor_one_gives_back_the_input():
    out = _as_uint8(color.color_saturation_lab(X, 1.0, np.random.default_rng(0)))
    assert np.abs(out.astype(int) - _as_uint8(X).astype(int)).max() <= 1


def test_lab_types_clip_to_the_unit_range():
    for name in ("color_diffusion", "color_saturation_lab"):
        out = color.IMPLEMENTATIONS[name].single(X, LEVELS[name][-1], np.random.default_rng(0))
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert (out == 1.0).any() or (out == 0.0).any()  # strong levels do saturate


def test_color_diffusion_keeps_grey_images_grey():
    # Grey has a*, b* ~ 0 (not exactly: MATLAB's D65 white differs from the sRGB matrix's white
    # in the 5th digit), so even scaled by 12 the tint stays far below one grey level.
    ramp = np.linspace(0.0, 1.0, 48)
    grey = np.repeat(np.tile(ramp, (32, 1))[..., None], 3, axis=2)
    for amount in LEVELS["color_diffusion"]:
        out = color.color_diffusion(grey, amount, np.random.default_rng(0))
        assert np.abs(out - out.mean(axis=-1, keepdims=True)).max() < 0.2 / 255


def test_color_diffusion_blurs_chroma_only_at_amount_one():
    # amount 1 blurs a*, b* (sigma 3.5) without scaling them: lightness is untouched.
    out = color.color_diffusion(X, 1.0, np.random.default_rng(0))
    lab_in, lab_out = _ops.rgb2lab(X), _ops.rgb2lab(out)
    inside = (out > 0.001).all(axis=-1) & (out < 0.999).all(axis=-1)  # not clipped
    assert np.abs(lab_out[..., 0] - lab_in[..., 0])[inside].max() < 1e-6
    assert lab_out[..., 1].std() < lab_in[..., 1].std()


# ---------------------------------------------------------------------------------------------
# color_shift and its helpers
# ---------------------------------------------------------------------------------------------


def test_percentile_rank_follows_matlab_percentile1():
    assert color._percentile_rank(100, 99.0) == 99
    assert color._percentile_rank(10, 99.0) == 10  # 9.9 rounds to 10
    assert color._percentile_rank(50, 99.0) == 50  # 49.5 rounds half up
    assert color._percentile_rank(3, 1.0) == 1  # clipped to the first element


def test_ps2_clips_the_outer_percent_and_stretches():
    a = np.linspace(0.0, 1.0, 1000) ** 3
    a[-3:] = 50.0  # outliers above the 99th percentile
    b = color._ps2(a.reshape(25, 40))
    assert b.min() == 0.0 and b.max() == 1.0
    assert (b.ravel()[-10:] == 1.0).all()  # the top 1 % is clipped to the maximum
    assert np.median(b) > 0.05  # outliers no longer squash the rest
    t = torch.from_numpy(a.reshape(1, 1, 25, 40))
    np.testing.assert_allclose(color._ps2_batch(t)[0, 0].numpy(), b, atol=1e-12)


def test_gradient_magnitude_batch_equals_numpy_gradient():
    g = np.random.default_rng(1).random((7, 9))
    gy, gx = np.gradient(g)
    got = color._gradient_magnitude_batch(torch.from_numpy(g).view(1, 1, 7, 9))
    np.testing.assert_allclose(got[0, 0].numpy(), np.hypot(gx, gy), atol=1e-12)


def test_shift_offsets_round_the_unit_direction():
    np.testing.assert_array_equal(color._shift_offsets(np.array([0.3, 0.4]), 10), [6, 8])
    np.testing.assert_array_equal(color._shift_offsets(np.array([0.7, 0.0]), 3), [3, 0])
    np.testing.assert_array_equal(color._shift_offsets(np.zeros(2), 12), [0, 0])


def test_color_shift_moves_green_only_and_only_near_edges():
    img = np.zeros((40, 60, 3))
    img[:, 30:] = 1.0  # one vertical edge
    out = color.color_shift(img, 12, np.random.default_rng(0))
    np.testing.assert_array_equal(out[..., [0, 2]], img[..., [0, 2]])
    changed = np.abs(out[..., 1] - img[..., 1]) > 1e-9
    assert changed.any()
    assert not changed[:, :15].any() and not changed[:, 45:].any()  # flat far from the edge


def test_color_shift_direction_comes_from_rng():
    for seed in range(4):
        dy, dx = color._shift_offsets(np.random.default_rng(seed).random(2), 12)
        weight = color._edge_weight(_ops.rgb2gray(X))
        h, w, _ = X.shape
        shifted = X[np.clip(np.arange(h) - dy, 0, h - 1)][:, np.clip(np.arange(w) - dx, 0, w - 1)]
        want = X.copy()
        want[..., 1] = shifted[..., 1] * weight + X[..., 1] * (1 - weight)
        got = color.color_shift(X, 12, np.random.default_rng(seed))
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_color_shift_batch_matches_single_for_the_same_shift():
    # The two paths draw differently; with amount 0 both shift by (0, 0) and must agree.
    images = [IMAGE, natural_image(64, 80, seed=4)]
    got = _batch_as_uint8(color.color_shift_batch(_batch_of(*images), 0, _gen(0)))
    for img, g in zip(images, got, strict=True):
        want = _as_uint8(color.color_shift(_ops.to_unit_float(img), 0, np.random.default_rng(0)))
        assert np.abs(g.astype(int) - want.astype(int)).max() <= 1
    # And the edge weights agree between the paths.
    x = _batch_of(IMAGE)
    w_batch = color._edge_weight_batch(_ops.rgb2gray_batch(x))[0, 0].double().numpy()
    w_single = color._edge_weight(_ops.rgb2gray(X))
    assert np.abs(w_batch - w_single).max() < 1e-4


def test_color_shift_batch_draws_per_image_and_repeats_with_the_seed():
    x = _batch_of(*([IMAGE] * 6))
    a = color.color_shift_batch(x, 12, _gen(3))
    b = color.color_shift_batch(x, 12, _gen(3))
    assert torch.equal(a, b)
    assert len({a[i].numpy().tobytes() for i in range(6)}) > 1


# ---------------------------------------------------------------------------------------------
# color_quantization
# ---------------------------------------------------------------------------------------------


def test_wu_palette_recovers_few_distinct_colours_exactly():
    colours = np.array([[0, 0, 0], [255, 0, 0], [10, 200, 30], [90, 90, 250], [255, 255, 255]])
    pixels = colours[np.random.default_rng(0).integers(0, 5, 400)].astype(np.uint8)
    palette = color.wu_palette(pixels, 8)  # fewer colours than asked: stops early
    assert sorted(map(tuple, palette)) == sorted(map(tuple, colours))


def test_wu_palette_boxes_split_by_variance():
    # Two tight clusters far apart must end up in different boxes, at their means.
    rng = np.random.default_rng(0)
    a = rng.normal([40, 40, 40], 2, (300, 3))
    b = rng.normal([200, 180, 20], 2, (100, 3))
    pixels = np.clip(np.round(np.vstack([a, b])), 0, 255).astype(np.uint8)
    palette = color.wu_palette(pixels, 2).astype(float)
    means = np.array([pixels[:300].mean(0), pixels[300:].mean(0)])
    order = np.argsort(palette[:, 0])
    np.testing.assert_allclose(palette[order], means, atol=1.0)


def test_quantized_image_uses_at_most_n_colours():
    for n in LEVELS["color_quantization"]:
        out = _as_uint8(color.color_quantization(X, n, np.random.default_rng(0)))
        assert len(np.unique(out.reshape(-1, 3), axis=0)) <= n


def test_quantization_of_an_image_with_few_colours_is_lossless():
    img = np.zeros((24, 32, 3))
    img[:, 16:] = [1.0, 0.0, 0.0]
    img[12:, :16] = [0.0, 0.4, 1.0]
    out = color.color_quantization(img, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(_ops.to_uint8(out), _ops.to_uint8(img))


def test_quantization_error_grows_as_colours_drop():
    errors = [
        np.abs(color.color_quantization(X, n, np.random.default_rng(0)) - X).mean()
        for n in LEVELS["color_quantization"]
    ]
    assert all(b > a for a, b in zip(errors, errors[1:], strict=False)), errors


def test_quantization_rejects_a_bad_colour_count():
    with pytest.raises(ValueError, match="n_colors"):
        color.color_quantization(X, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_colors"):
        color.color_quantization(X, 12.5, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Strength per level and the batch path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(color.IMPLEMENTATIONS))
def test_strength_grows_with_level(name):
    fn = color.IMPLEMENTATIONS[name].single
    ref = _as_uint8(X).astype(float)
    errors = [
        np.abs(_as_uint8(fn(X, p, np.random.default_rng(1))) - ref).mean() for p in LEVELS[name]
    ]
    assert all(b > a for a, b in zip(errors, errors[1:], strict=False)), (name, errors)


@pytest.mark.parametrize("name", DETERMINISTIC_WITH_BATCH)
def test_batch_equals_single_within_one_grey_level(name):
    images = [IMAGE, natural_image(64, 80, seed=4)]
    impl = color.IMPLEMENTATIONS[name]
    for p in LEVELS[name]:
        got = _batch_as_uint8(impl.batch(_batch_of(*images), p, _gen(0)))
        for img, g in zip(images, got, strict=True):
            want = _as_uint8(impl.single(_ops.to_unit_float(img), p, np.random.default_rng(0)))
            assert np.abs(g.astype(int) - want.astype(int)).max() <= 1, (name, p)


def test_quantization_has_no_batch_kernel():
    assert color.IMPLEMENTATIONS["color_quantization"].batch is None
    assert color.IMPLEMENTATIONS["color_shift"].stochastic
    assert not any(color.IMPLEMENTATIONS[n].stochastic for n in DETERMINISTIC_WITH_BATCH)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batch_on_cuda_matches_cpu():
    x = _batch_of(IMAGE, natural_image(64, 80, seed=4))
    for name, impl in color.IMPLEMENTATIONS.items():
        if impl.batch is None:
            continue
        p = LEVELS[name][-1]
        gpu_out = impl.batch(x.cuda(), p, _gen(0, "cuda"))
        assert gpu_out.device.type == "cuda"
        gpu = _batch_as_uint8(gpu_out.cpu())
        if impl.stochastic:
            again = _batch_as_uint8(impl.batch(x.cuda(), p, _gen(0, "cuda")).cpu())
            np.testing.assert_array_equal(gpu, again)
        else:
            cpu = _batch_as_uint8(impl.batch(x, p, _gen(0)))
            assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 1, name
