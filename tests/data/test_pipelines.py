"""Training/evaluation views and domain filtering over ingested shards."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from dgqa_ray.data import pipelines, shards
from dgqa_ray.data.schema import SCHEMA
from tests.conftest import natural_image

# -- image operations, no Ray ------------------------------------------------------------------


def _encode(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def _is_window(crop_chw: np.ndarray, source_hwc: np.ndarray) -> tuple[bool, bool]:
    """(found, flipped): whether the crop is a window of the source, as is or mirrored."""
    crop = crop_chw.transpose(1, 2, 0)
    c = crop.shape[0]
    h, w, _ = source_hwc.shape
    for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
        for top in range(h - c + 1):
            for left in range(w - c + 1):
                if np.array_equal(source_hwc[top : top + c, left : left + c], candidate):
                    return True, flipped
    return False, False


def test_decode_image_matches_pillow_for_png_bmp_and_jpeg():
    rgb = natural_image(48, 64, seed=1)
    for fmt in ("PNG", "BMP"):
        chw = pipelines.decode_image(_encode(rgb, fmt))
        assert chw.dtype == np.uint8 and chw.shape == (3, 48, 64)
        np.testing.assert_array_equal(chw.transpose(1, 2, 0), rgb)
    jpeg = _encode(rgb, "JPEG", quality=90)
    with Image.open(io.BytesIO(jpeg)) as im:
        reference = np.asarray(im.convert("RGB")).astype(int)
    chw = pipelines.decode_image(jpeg)  # torchvision's libjpeg-turbo path
    assert chw.shape == (3, 48, 64)
    # Both are libjpeg-turbo; chroma upsampling may differ by a level or two.
    assert np.abs(chw.transpose(1, 2, 0).astype(int) - reference).mean() < 1.5
    gray = _encode(rgb[..., 0], "JPEG")
    assert pipelines.decode_image(gray).shape == (3, 48, 64)  # grayscale -> 3 channels


def test_random_crop_is_a_window_and_flips_about_half_the_time():
    rgb = natural_image(40, 52, seed=2)
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    flips = 0
    for seed in range(40):
        out = pipelines.random_crop(chw, 32, np.random.default_rng(seed), flip=True)
        assert out.shape == (3, 32, 32)
        found, flipped = _is_window(out, rgb)
        assert found
        flips += flipped
    assert 8 <= flips <= 32
    out = pipelines.random_crop(chw, 32, np.random.default_rng(0), flip=False)
    assert _is_window(out, rgb) == (True, False)


def test_small_images_are_resized_up_to_the_crop():
    chw = np.zeros((3, 20, 50), dtype=np.uint8)
    bigger = pipelines.ensure_min_size(chw, 32)
    assert bigger.shape == (3, 32, 80)  # shorter side to 32, aspect kept
    crop = pipelines.random_crop(chw, 32, np.random.default_rng(0), flip=True)
    assert crop.shape == (3, 32, 32)


def test_bad_view_arguments_name_the_option():
    with pytest.raises(ValueError, match="crop must be a positive int"):
        pipelines.training_view(None, crop=0)
    with pytest.raises(ValueError, match="num_crops must be a positive int"):
        pipelines.evaluation_view(None, num_crops=0)


# -- views over shards, on Ray -------------------------------------------------------------------

N_IMAGES = 12
SIZE = (40, 56)  # (H, W): crops of 32 leave 9 x 25 positions


def _source(i: int) -> np.ndarray:
    return natural_image(*SIZE, seed=100 + i)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A 12-image dataset (PNG, so crops can be compared pixel for pixel), two shards."""
    root = str(tmp_path_factory.mktemp("pipelines"))
    n = N_IMAGES
    table = pa.table(
        {
            "image_id": [f"img{i:02d}" for i in range(n)],
            "dataset": ["toy"] * n,
            "ref_id": [f"ref{i // 4}" for i in range(n)],
            # three domains, and unknown (null) for the last two images
            "dist_type": pa.array([i % 3 for i in range(n - 2)] + [None, None], pa.int16()),
            "dist_level": pa.array([1] * n, pa.int16()),
            "subset": pa.array([None] * n, pa.string()),
            "mos": [float(i) for i in range(n)],
            "score": [None] + [float(i) for i in range(1, n)],  # one unlabelled image
            "width": pa.array([SIZE[1]] * n, pa.int32()),
            "height": pa.array([SIZE[0]] * n, pa.int32()),
            "image": [_encode(_source(i), "PNG") for i in range(n)],
        }
    ).cast(SCHEMA)
    shards.write_dataset(
        root, "toy", [table], source_fingerprint="t", shard_size_mb=0.02, row_group_mb=0.01
    )
    return root


def _epoch(view) -> dict[str, np.ndarray]:
    out = {}
    for batch in view.iter_batches(batch_size=5, **pipelines.TRAIN_ITER_KWARGS):
        assert batch["image"].dtype == np.uint8
        for image_id, image in zip(batch["image_id"], batch["image"], strict=True):
            out[str(image_id)] = image
    return out


@pytest.mark.slow
def test_training_view_crops_flips_and_reshuffles_every_epoch(store, ray_local):
    ds = pipelines.read_dataset(store, "toy")
    view = pipelines.training_view(ds, crop=32, seed=7)
    first, second = _epoch(view), _epoch(view)
    assert sorted(first) == [f"img{i:02d}" for i in range(N_IMAGES)]
    flips = 0
    for image_id, crop in first.items():
        assert crop.shape == (3, 32, 32)
        found, flipped = _is_window(crop, _source(int(image_id[3:])))
        assert found, image_id
        flips += flipped
    assert 0 < flips < N_IMAGES  # both happen (p=0.5 each, 12 images, fixed seed)
    # Each epoch takes new crops; the same seed repeats the same sequence of epochs.
    assert sum(not np.array_equal(first[k], second[k]) for k in first) >= N_IMAGES - 1
    again = _epoch(pipelines.training_view(pipelines.read_dataset(store, "toy"), crop=32, seed=7))
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_training_view_without_hflip_never_mirrors(store, ray_local):
    view = pipelines.training_view(
        pipelines.read_dataset(store, "toy"), crop=32, seed=7, hflip=False
    )
    for image_id, crop in _epoch(view).items():
        found, flipped = _is_window(crop, _source(int(image_id[3:])))
        assert found and not flipped, image_id


@pytest.mark.slow
def test_cached_training_view_reads_once_and_still_recrops(store, ray_local, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    view = pipelines.training_view(
        pipelines.read_dataset(str(copy), "toy"), crop=32, seed=1, cache_encoded=True
    )
    shutil.rmtree(copy)  # the encoded rows now live in Ray's object store only
    first, second = _epoch(view), _epoch(view)
    assert sorted(first) == sorted(second) == [f"img{i:02d}" for i in range(N_IMAGES)]
    assert any(not np.array_equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_training_view_columns_and_nulls(store, ray_local):
    view = pipelines.training_view(pipelines.read_dataset(store, "toy"), crop=24)
    rows = {r["image_id"]: r for r in view.take_all()}
    assert set(rows["img00"]) == {"image", "score", "dist_type", "image_id"}
    assert np.isnan(rows["img00"]["score"]) and rows["img05"]["score"] == 5.0
    assert rows["img11"]["dist_type"] == pipelines.UNKNOWN_DIST_TYPE
    assert rows["img04"]["dist_type"] == 1
    assert rows["img04"]["image"].shape == (3, 24, 24)
    # Larger than the images: resized up, still square crops of the requested size.
    big = pipelines.training_view(pipelines.read_dataset(store, "toy"), crop=64).take(2)
    assert all(r["image"].shape == (3, 64, 64) for r in big)


@pytest.mark.slow
def test_training_batches_are_shuffled_across_blocks(store, ray_local):
    ds = pipelines.read_dataset(store, "toy")
    orders = set()
    for seed in range(3):
        view = pipelines.training_view(ds, crop=16, seed=seed)
        ids = [i for b in view.iter_batches(batch_size=4, local_shuffle_buffer_size=8,
                                            local_shuffle_seed=seed) for i in b["image_id"]]  # fmt: skip
        assert sorted(ids) == [f"img{i:02d}" for i in range(N_IMAGES)]
        orders.add(tuple(ids))
    assert len(orders) > 1


@pytest.mark.slow
def test_evaluation_view_gives_n_crops_per_image_with_ids(store, ray_local):
    ds = pipelines.read_dataset(store, "toy")
    rows = pipelines.evaluation_view(ds, crop=32, num_crops=4, seed=3).take_all()
    assert len(rows) == 4 * N_IMAGES
    by_image: dict[str, list] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(row)
    assert len(by_image) == N_IMAGES
    for image_id, crops in by_image.items():
        assert sorted(r["crop_index"] for r in crops) == [0, 1, 2, 3]
        source = _source(int(image_id[3:]))
        for r in crops:
            assert _is_window(r["image"], source) == (True, False)  # no flips at evaluation
        positions = {r["image"].tobytes() for r in crops}
        assert len(positions) > 1  # different places, not one crop four times
    # Seeded: the same crops every evaluation.
    again = pipelines.evaluation_view(ds, crop=32, num_crops=4, seed=3).take_all()
    key = {(r["image_id"], r["crop_index"]): r["image"].tobytes() for r in rows}
    assert all(key[(r["image_id"], r["crop_index"])] == r["image"].tobytes() for r in again)


@pytest.mark.slow
def test_filter_domains_keeps_only_requested_types(store, ray_local):
    ds = pipelines.read_dataset(store, "toy")
    ids = lambda d: sorted(r["image_id"] for r in d.select_columns(["image_id"]).take_all())  # noqa: E731
    assert ids(pipelines.filter_domains(ds, [1])) == ["img01", "img04", "img07"]
    assert ids(pipelines.filter_domains(ds, [0, 2])) == [
        "img00", "img02", "img03", "img05", "img06", "img08", "img09",
    ]  # fmt: skip
    assert ids(pipelines.filter_domains(ds, [None])) == ["img10", "img11"]
    assert len(ids(pipelines.filter_domains(ds, [1, None]))) == 5
    # The filter composes with the views: crops only of the kept domain.
    view = pipelines.training_view(pipelines.filter_domains(ds, [2]), crop=16)
    assert sorted(r["image_id"] for r in view.take_all()) == ["img02", "img05", "img08"]
    with pytest.raises(ValueError, match="0 \\(pristine\\), 1..25"):
        pipelines.filter_domains(ds, [26])


def test_read_dataset_refuses_missing_manifest(tmp_path):
    (tmp_path / "toy" / "versions").mkdir(parents=True)
    with pytest.raises(shards.ManifestError, match="has no manifest"):
        pipelines.read_dataset(str(tmp_path), "toy")
