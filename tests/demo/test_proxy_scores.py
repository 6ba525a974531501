"""MS-SSIM proxies: scale, batching, and that they rank the KADID levels sensibly."""

from __future__ import annotations

import numpy as np
import pytest

from dgqa_ray import distortions
from dgqa_ray.demo.photos import embedded_references
from dgqa_ray.demo.proxy_scores import (
    MS_SSIM_WEIGHTS,
    PROXY_NAME,
    ms_ssim_scales,
    proxy_scores,
    proxy_spec,
)
from tests.conftest import natural_image


def test_identical_image_scores_one_and_damage_scores_less():
    image = natural_image(96, 128, seed=0)
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).normal(0, 25, image.shape), 0, 255)
    scores = proxy_scores(np.stack([image, noisy.astype(np.uint8)]), image)
    assert scores.dtype == np.float64 and scores.shape == (2,)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 <= scores[1] < 0.95  # sigma 25 on 0..255: MS-SSIM ~0.93


def test_blur_levels_score_in_order():
    image = natural_image(96, 128, seed=3)
    blurred = np.stack([distortions.apply(image, "gaussian_blur", lvl) for lvl in range(1, 6)])
    scores = proxy_scores(blurred, image)
    assert np.all(np.diff(scores) < 0), scores  # level 1 (mildest) .. level 5


def test_level_5_scores_below_level_1_for_every_type_but_the_two_with_an_identity_level():
    # Mean shift (18) and contrast change (25) have level 3 = identity and levels 1 / 5 on
    # opposite sides of it, so "5 is worse than 1" is not what they promise; every other type
    # must satisfy it, on tiles of two different photos.
    tiles = [t for t in embedded_references((96, 128)) if t.name.endswith("_t00")][:3:2]
    assert {t.content for t in tiles} == {"skimage_astronaut", "skimage_coffee"}
    for tile in tiles:
        mild = [distortions.apply(tile.image, t, 1, seed=t) for t in range(1, 26)]
        severe = [distortions.apply(tile.image, t, 5, seed=t) for t in range(1, 26)]
        p1, p5 = proxy_scores(mild, tile.image), proxy_scores(severe, tile.image)
        wrong = {t for t in range(1, 26) if not p5[t - 1] < p1[t - 1]}
        assert wrong <= {18, 25}, (tile.name, sorted(wrong))


def test_scales_follow_the_tile_size():
    assert ms_ssim_scales(192, 256) == 5  # the standard MS-SSIM
    assert ms_ssim_scales(161, 1000) == 5
    assert ms_ssim_scales(160, 1000) == 4
    assert ms_ssim_scales(96, 128) == 4
    assert ms_ssim_scales(48, 64) == 3
    assert ms_ssim_scales(11, 11) == 1
    with pytest.raises(ValueError, match="too small for MS-SSIM"):
        ms_ssim_scales(10, 64)
    spec = proxy_spec(96, 128)
    assert spec.name == PROXY_NAME and spec.library == "piq" and spec.scales == 4
    assert sum(spec.weights) == pytest.approx(1.0, abs=1e-5)
    expected = np.array(MS_SSIM_WEIGHTS[:4]) / sum(MS_SSIM_WEIGHTS[:4])
    np.testing.assert_allclose(spec.weights, expected, atol=1e-6)
    assert "not a subjective score" in spec.to_dict()["note"]


def test_batching_and_reference_forms_give_the_same_scores():
    refs = np.stack([natural_image(48, 64, seed=s) for s in range(3)])  # (3, 48, 64, 3)
    dist = np.stack([distortions.apply(r, "jpeg", 4) for r in refs])
    one_by_one = np.array([proxy_scores(d, r)[0] for d, r in zip(dist, refs, strict=True)])
    batched = proxy_scores(dist, refs, batch_size=2)
    listed = proxy_scores(list(dist), list(refs), batch_size=64)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-6)
    np.testing.assert_allclose(listed, one_by_one, rtol=1e-6)
    # One reference broadcast to every image.
    same_ref = proxy_scores(np.stack([dist[0], dist[0]]), refs[0])
    np.testing.assert_allclose(same_ref, [one_by_one[0]] * 2, rtol=1e-6)


@pytest.mark.parametrize(
    ("distorted", "reference", "message"),
    [
        (np.zeros((2, 48, 64, 3), np.float32), np.zeros((48, 64, 3), np.uint8), "dtype uint8"),
        (np.zeros((2, 48, 64), np.uint8), np.zeros((48, 64), np.uint8), r"\(N, H, W, 3\)"),
        (np.zeros((2, 48, 64, 3), np.uint8), np.zeros((40, 64, 3), np.uint8), "size"),
        (np.zeros((2, 48, 64, 3), np.uint8), np.zeros((3, 48, 64, 3), np.uint8), "1 or 2"),
        ([], np.zeros((48, 64, 3), np.uint8), "at least one image"),
        (
            [np.zeros((48, 64, 3), np.uint8), np.zeros((40, 64, 3), np.uint8)],
            np.zeros((48, 64, 3), np.uint8),
            "one size",
        ),
    ],
)
def test_bad_inputs_name_the_argument(distorted, reference, message):
    with pytest.raises(ValueError, match=message):
        proxy_scores(distorted, reference)


def test_bad_batch_size_is_refused():
    image = natural_image(48, 64)
    with pytest.raises(ValueError, match="batch_size"):
        proxy_scores(image, image, batch_size=0)
