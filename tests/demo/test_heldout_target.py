"""The held-out check target: photos no pool uses, degraded by other libraries (no Ray)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgqa_ray.demo.heldout_target import (
    EXPECTED_TYPES,
    LEVELS,
    build_heldout_target,
    degrade,
    expected_types,
    heldout_photos,
    heldout_recovery,
    read_heldout_truth,
)
from dgqa_ray.demo.photos import embedded_photos
from dgqa_ray.demo.proxy_scores import proxy_scores


def test_the_photos_are_none_of_the_pools():
    held = heldout_photos()
    assert set(held) == {"sklearn_china", "sklearn_flower", "matplotlib_grace_hopper"}
    pools = embedded_photos()
    for photo in held.values():
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
        assert all(photo.shape != p.shape or not np.array_equal(photo, p) for p in pools.values())


@pytest.mark.parametrize("kind", list(LEVELS))
def test_each_degradation_gets_worse_with_its_level(kind):
    tile = heldout_photos()["sklearn_china"][100:196, 200:328]
    scores = [
        proxy_scores(degrade(tile, kind, level, np.random.default_rng(0))[None], tile)[0]
        for level in (1, 5)
    ]
    assert scores[1] < scores[0] < 1.0, (kind, scores)


def test_the_target_table_is_built_once_and_describes_every_image(tmp_path):
    table = build_heldout_target(tmp_path, tile=(96, 128), n_images=12, seed=0)
    stamp = (tmp_path / "heldout.csv").stat().st_mtime_ns
    assert build_heldout_target(tmp_path, tile=(96, 128), n_images=12, seed=0) == table
    assert (tmp_path / "heldout.csv").stat().st_mtime_ns == stamp  # same settings: reused
    frame = pd.read_csv(table)
    assert list(frame.columns[:4]) == ["path", "image_id", "ref_id", "proxy_ms_ssim"]
    assert len(frame) == 12 and frame["proxy_ms_ssim"].between(0, 1).all()
    assert all((tmp_path / p).is_file() for p in frame["path"])
    truth = read_heldout_truth(table)
    assert all(1 <= len(k) <= 2 for k in truth["degradations"])
    present = expected_types(truth)
    assert set(present) <= set(LEVELS) and len(present) >= 4
    assert present["pil_jpeg"] == EXPECTED_TYPES["pil_jpeg"]


def test_recovery_counts_a_degradation_found_when_one_of_its_types_is_selected():
    truth = pd.DataFrame({"degradations": [("pil_gaussian_blur",), ("pil_jpeg", "pil_darken")]})
    found = heldout_recovery([2, 10, 7], truth)
    assert found == {
        "found": ["pil_gaussian_blur", "pil_jpeg"],
        "missed": ["pil_darken"],
        "extra": [7],
    }


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="kinds"):
        build_heldout_target(tmp_path, kinds=["sepia"])
    with pytest.raises(ValueError, match="max_per_image"):
        build_heldout_target(tmp_path, kinds=["pil_jpeg"], max_per_image=2)
    with pytest.raises(ValueError, match="kind"):
        degrade(np.zeros((8, 8, 3), np.uint8), "sepia", 1, np.random.default_rng(0))
