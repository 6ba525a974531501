"""The classifier's on-the-fly views: references distorted afresh every epoch, and a fixed
validation set (the batch functions run without a cluster; the views on a local Ray)."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from dgqa_ray import distortions
from dgqa_ray.data import pipelines
from tests.conftest import natural_image


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _references(n: int, h: int = 48, w: int = 64) -> tuple[pa.Table, dict[str, np.ndarray]]:
    images = {f"ref{i}": natural_image(h, w, seed=10 + i) for i in range(n)}
    table = pa.table(
        {
            "image_id": list(images),
            "image": [_png(v) for v in images.values()],
            "dist_type": pa.array([0] * n, pa.int16()),
        }
    )
    return table, images


def _train(table, **kw):
    args = {
        "crop": 32,
        "samples_per_ref": 6,
        "seed": 3,
        "epoch": 0,
        "hflip": False,
        "num_classes": 25,
        "device": "cpu",
    }
    args.update(kw)
    return pipelines._onthefly_train_batch(table, **args)


def _find(crop_chw: np.ndarray, image_hwc: np.ndarray) -> bool:
    c = crop_chw.shape[1]
    crop = crop_chw.transpose(1, 2, 0)
    h, w, _ = image_hwc.shape
    return any(
        np.array_equal(image_hwc[t : t + c, x : x + c], crop)
        for t in range(h - c + 1)
        for x in range(w - c + 1)
    )


def test_each_sample_is_its_label_applied_to_the_whole_reference():
    table, images = _references(2)
    out = _train(table)
    assert out["image"].shape == (12, 3, 32, 32) and out["image"].dtype == np.uint8
    assert set(out["dist_type"]) <= set(range(1, 26)) and set(out["dist_level"]) <= set(range(1, 6))
    deterministic = {d.dist_type for d in distortions.DISTORTIONS if not d.stochastic}
    checked = 0
    for i in range(12):
        t, lvl = int(out["dist_type"][i]), int(out["dist_level"][i])
        ref = out["image_id"][i].split("#")[0]
        if t in deterministic:
            # The crop is a window of the distortion of the *whole* reference, so the label
            # is what the pixels really carry.
            assert _find(out["image"][i], distortions.apply(images[ref], t, lvl)), (t, lvl)
            checked += 1
    assert checked >= 3


def test_draws_are_seeded_per_epoch_and_fresh_across_epochs():
    table, _ = _references(3)
    first, again = _train(table), _train(table)
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["dist_type"], again["dist_type"])
    later = _train(table, epoch=1)
    assert not np.array_equal(first["dist_type"], later["dist_type"])
    unseeded = [_train(table, seed=None)["dist_type"] for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_classes_are_drawn_uniformly_and_26_classes_include_pristine():
    table, _ = _references(4, 32, 32)
    counts = Counter()
    levels = Counter()
    for epoch in range(8):
        out = _train(table, samples_per_ref=25, epoch=epoch)
        counts.update(int(t) for t in out["dist_type"])
        levels.update(int(v) for v in out["dist_level"])
    assert set(counts) == set(range(1, 26))  # 800 draws: every type turns up
    assert max(counts.values()) < 3 * min(counts.values())
    assert set(levels) == {1, 2, 3, 4, 5}
    with26 = _train(table, samples_per_ref=50, num_classes=26)
    pristine = with26["dist_type"] == 0
    assert pristine.any() and (with26["dist_level"][pristine] == 0).all()


def test_the_validation_batch_is_fixed_balanced_and_has_the_crops_per_image():
    table, _ = _references(2)
    args = {"crop": 32, "num_crops": 3, "per_ref": 25, "seed": 0, "num_classes": 25}
    out = pipelines._onthefly_eval_batch(table, **args)
    assert out["image"].shape == (2 * 25 * 3, 3, 32, 32)
    again = pipelines._onthefly_eval_batch(table, **args)
    np.testing.assert_array_equal(out["image"], again["image"])
    # 25 images per reference cover the 25 types once each; crops of one image share labels.
    per_image = {}
    for name, t, lvl in zip(out["image_id"], out["dist_type"], out["dist_level"], strict=True):
        per_image.setdefault(name, set()).add((int(t), int(lvl)))
    assert len(per_image) == 50 and all(len(v) == 1 for v in per_image.values())
    for ref in ("ref0", "ref1"):
        types = sorted(next(iter(v))[0] for k, v in per_image.items() if k.startswith(ref + "#"))
        assert types == list(range(1, 26))
    np.testing.assert_array_equal(out["crop_index"][:6], [0, 1, 2, 0, 1, 2])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="samples_per_ref"):
        pipelines.onthefly_training_view(None, crop=32, samples_per_ref=0)
    with pytest.raises(ValueError, match="num_classes"):
        pipelines.onthefly_training_view(None, crop=32, num_classes=10)
    with pytest.raises(ValueError, match="no reference"):
        pipelines.onthefly_samples_per_reference(100, 0)
    assert pipelines.onthefly_samples_per_reference(1250, 26) == 48
    assert pipelines.onthefly_block_rows(60) == 5 and pipelines.onthefly_block_rows(500) == 1


@pytest.mark.slow
def test_the_views_stream_through_ray_data_with_new_draws_each_epoch(ray_local):
    import ray.data

    table, _ = _references(5, 40, 40)
    ds = ray.data.from_arrow(table).repartition(5)
    view = pipelines.onthefly_training_view(ds, crop=32, samples_per_ref=4, seed=1)
    epochs = [sorted((r["image_id"], int(r["dist_type"])) for r in view.take_all()) for _ in (1, 2)]
    assert len(epochs[0]) == 20
    assert {n.split("#")[0] for n, _ in epochs[0]} == {f"ref{i}" for i in range(5)}
    assert epochs[0] != epochs[1]  # the second pass draws new types
    val = pipelines.onthefly_evaluation_view(ds, crop=32, num_crops=2, per_ref=3, seed=0)
    rows = [sorted((r["image_id"], int(r["dist_type"])) for r in val.take_all()) for _ in range(2)]
    assert rows[0] == rows[1] and len(rows[0]) == 5 * 3 * 2
