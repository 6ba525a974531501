"""Properties every one of the 25 types must have, checked type by type.

Family-specific reference behaviours (kernels, identities, colour maths) live in the
test_<family>.py files next to this one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from dgqa_ray import distortions
from dgqa_ray.distortions import DISTORTIONS, apply, apply_batch, get_distortion
from tests.conftest import natural_image

ALL_TYPES = [d.dist_type for d in DISTORTIONS]
DETERMINISTIC = [d.dist_type for d in DISTORTIONS if not d.stochastic]
STOCHASTIC = [d.dist_type for d in DISTORTIONS if d.stochastic]
# KADID orders levels by perceived quality, not by pixel error: for these the error from the
# input is not monotonic in the level (mean shift goes +0.15 .. 0 .. -0.15, contrast change
# +0.3 .. 0 .. -0.6, pixelate's nearest-neighbour grid aliasing varies with the ratio).
NON_MONOTONIC = {18, 21, 25}

SMALL = natural_image(48, 64, seed=1)
PACKAGED_CSV = Path(__file__).resolve().parents[2] / "dgqa_ray/distortions/kadid_distortions.csv"
REFERENCE_SHA256 = "07697b2398c95cdcabf1273a9a7eb0bb465013c3d3c6e261e62133650af307e4"
"""sha256 of the reference generator's table (kadid_distortions.csv as the project received it):
the packaged copy must stay byte-identical to it, wherever the tests run."""


def test_table_has_25_types_with_ids_names_and_levels():
    assert [d.dist_type for d in DISTORTIONS] == list(range(1, 26))
    assert len({d.name for d in DISTORTIONS}) == 25
    assert all(len(d.levels) == 5 for d in DISTORTIONS)
    assert get_distortion("jpeg").levels == (43.0, 36.0, 24.0, 7.0, 4.0)
    assert get_distortion(1).name == "gaussian_blur"


def test_packaged_table_equals_the_reference_table():
    import hashlib

    assert hashlib.sha256(PACKAGED_CSV.read_bytes()).hexdigest() == REFERENCE_SHA256
    with PACKAGED_CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    for row, dist in zip(rows, DISTORTIONS, strict=True):
        assert int(row["dist_type"]) == dist.dist_type
        assert row["name"] == dist.name
        assert row["family"] == dist.family
        assert [float(row[f"level{i}"]) for i in range(1, 6)] == list(dist.levels)


@pytest.mark.parametrize("dist_type", ALL_TYPES)
def test_shape_dtype_kept_and_seed_repeats(dist_type):
    for level in (1, 5):
        a = apply(SMALL, dist_type, level, seed=7)
        b = apply(SMALL, dist_type, level, seed=7)
        assert a.shape == SMALL.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dist_type", ALL_TYPES)
def test_name_and_id_give_the_same_result(dist_type):
    name = get_distortion(dist_type).name
    np.testing.assert_array_equal(apply(SMALL, dist_type, 3, seed=3), apply(SMALL, name, 3, seed=3))


@pytest.mark.parametrize("dist_type", STOCHASTIC)
def test_stochastic_types_change_with_the_seed(dist_type):
    a = apply(SMALL, dist_type, 5, seed=1)
    b = apply(SMALL, dist_type, 5, seed=2)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("dist_type", ALL_TYPES)
def test_batch_path_keeps_shape_dtype_and_repeats_with_seed(dist_type):
    batch = torch.from_numpy(np.stack([SMALL, natural_image(48, 64, seed=2)])).permute(0, 3, 1, 2)
    a = apply_batch(batch, dist_type, 4, seed=11)
    b = apply_batch(batch, dist_type, 4, seed=11)
    assert a.shape == batch.shape and a.dtype == torch.uint8 and a.device == batch.device
    assert torch.equal(a, b)
    if get_distortion(dist_type).stochastic:
        # Each image of a batch gets its own draws: the same image twice differs.
        twin = torch.stack([batch[0], batch[0]])
        out = apply_batch(twin, dist_type, 5, seed=5)
        assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("dist_type", DETERMINISTIC)
def test_batch_path_equals_single_image_path(dist_type):
    images = [natural_image(48, 64, seed=s) for s in (3, 4)]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    for level in range(1, 6):
        out = apply_batch(batch, dist_type, level).permute(0, 2, 3, 1).numpy()
        for img, got in zip(images, out, strict=True):
            want = apply(img, dist_type, level)
            diff = np.abs(got.astype(int) - want.astype(int))
            # Rounding differs between float32 torch and float64 NumPy: allow one grey level,
            # on all but a handful of pixels sitting exactly on a rounding or threshold edge.
            assert diff.max() <= 1 or np.mean(diff > 1) < 1e-3, (dist_type, level, diff.max())


@pytest.mark.parametrize("dist_type", [t for t in ALL_TYPES if t not in NON_MONOTONIC])
def test_strength_grows_with_level(dist_type):
    img = natural_image(96, 128, seed=5)
    base = apply(img, 18, 3).astype(float)  # mean shift 0 = the mapmm'd input, as uint8
    # Stochastic types: average over seeds, so that one unlucky draw (a colour block painted
    # in the colour underneath) does not decide.
    seeds = range(4) if get_distortion(dist_type).stochastic else [0]
    errors = [
        np.mean(
            [np.abs(apply(img, dist_type, lv, seed=s).astype(float) - base).mean() for s in seeds]
        )
        for lv in range(1, 6)
    ]
    assert errors[-1] > errors[0], errors
    for lo, hi in zip(errors, errors[1:], strict=False):
        assert hi >= lo * 0.97 - 0.05, (dist_type, errors)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dist_type": 0, "level": 1}, "dist_type"),
        ({"dist_type": 26, "level": 1}, "dist_type"),
        ({"dist_type": "blurry", "level": 1}, "gaussian_blur"),
        ({"dist_type": 1.5, "level": 1}, "dist_type"),
        ({"dist_type": 1, "level": 0}, "level"),
        ({"dist_type": 1, "level": 6}, "1..5"),
        ({"dist_type": 1, "level": 2.0}, "level"),
    ],
)
def test_bad_type_or_level_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        apply(SMALL, **kwargs)
    with pytest.raises(ValueError, match=match):
        apply_batch(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), **kwargs)


@pytest.mark.parametrize(
    "image, match",
    [
        (SMALL.astype(np.float32), "uint8"),
        (SMALL[..., 0], r"\(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), r"\(H, W, 3\)"),
        (SMALL.tolist(), "numpy array"),
    ],
)
def test_bad_image_names_the_argument(image, match):
    with pytest.raises(ValueError, match=f"image: .*{match}"):
        apply(image, 1, 1)


def test_bad_batch_names_the_argument():
    with pytest.raises(ValueError, match="images: .*uint8"):
        apply_batch(torch.zeros(1, 3, 8, 8), 1, 1)
    with pytest.raises(ValueError, match=r"images: .*\(B, 3, H, W\)"):
        apply_batch(torch.zeros(3, 8, 8, dtype=torch.uint8), 1, 1)


def test_constant_image_stays_valid():
    grey = np.full((32, 32, 3), 128, np.uint8)
    for dist_type in (1, 11, 16, 25):
        out = apply(grey, dist_type, 3, seed=0)
        assert out.dtype == np.uint8 and out.shape == grey.shape


def test_public_api_is_exported():
    assert {"apply", "apply_batch", "get_distortion", "DISTORTIONS"} <= set(distortions.__all__)
