"""Ray Data views over ingested shards: what training and evaluation iterate over.

    ds = read_dataset("s3://bucket/dgqa", "kadid10k")        # encoded rows, manifest-checked
    ds = filter_domains(ds, [1, 2, 3])                       # keep only these KADID types
    train = training_view(ds, crop=224)                      # one random crop + flip per epoch
    train = train.select_columns(["image", "score"])         # torch batches: numeric columns
    for batch in train.iter_torch_batches(batch_size=32, **TRAIN_ITER_KWARGS):
        images = batch["image"]                              # (B, 3, 224, 224) uint8
    evaluation_view(ds, crop=224, num_crops=5, seed=0)       # rows: image_id, crop_index, ...

Images stay uint8 until the device (normalise there: 4x less data through the object store
and host-to-device copies). Decoding: JPEG with ``torchvision.io.decode_jpeg`` (libjpeg-turbo),
everything else (PNG, BMP, TIFF) with Pillow. Measured on one core of the 2-core dev box, the
benchmark's 512x384 JPEGs: torchvision 1,010 img/s, Pillow decode + RGB array 550 img/s; it also
yields CHW directly. Pillow's JPEG draft mode does not help: it only speeds up decoding to a
*smaller* size (DCT scaling), and crops are taken at full resolution as in the paper.

Images smaller than the crop on either side are first resized up (bilinear, aspect kept) so the
shorter side equals the crop. Zero padding was the alternative; it adds hard black borders, which
a quality model would read as a distortion. None of the paper's datasets needs this (the smallest
images are PIPAL's 288x288); it exists so tiny test images and odd user photos still work.

Shuffling, at three levels (ingestion already stored the rows in a seeded random order, so a
block of consecutive rows is a random sample, not one reference's 125 distorted versions):
- across blocks: ``randomize_block_order`` on the encoded blocks (reshuffled every epoch). It is
  a barrier: all encoded blocks of the dataset are read before the first is decoded, which is
  fine while the *encoded* dataset fits the object store (it spills to disk beyond). For larger
  datasets pass ``block_shuffle=False`` and ``read_dataset(..., shuffle_files=True)``, which
  streams (shard order shuffled per epoch).
- within a decode batch: each decode task emits its rows in a random order (free).
- locally: ``local_shuffle_buffer_size`` when iterating (``TRAIN_ITER_KWARGS``), which mixes rows
  of different decode batches in a bounded buffer on the consumer. It costs consumer CPU (each
  crop is copied about twice): measured 1,250 vs 1,385 img/s without it on 2 cores.
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from dgqa_ray import storage

from . import shards

DEFAULT_CROP = 224
DEFAULT_EVAL_CROPS = 5
# Encoded rows per block when reading: a 256 MB shard of 5,000 JPEGs becomes ~80 blocks that
# decode in parallel tasks, one block per decode task (DECODE_BATCH). Measured on 2 cores,
# 2,048 JPEGs of 512x384 in one shard: 64-row blocks 1,460 img/s; blocks cut by size instead
# (Ray's target_max_block_size = 8 MB, ~180 rows, decoded output split in two) 750 img/s.
READ_BLOCK_ROWS = 64
# Rows per decode task call: one read block; its decoded output (64 x 3 x 224 x 224 = 9.6 MB)
# stays one block under Ray's default 128 MB block size target.
DECODE_BATCH = 64
# Iterate training views with these: the buffer mixes rows across blocks (local shuffle), at the
# cost of ~buffer x 150 kB of consumer memory for 224 crops.
LOCAL_SHUFFLE_BUFFER = 1024
TRAIN_ITER_KWARGS = {"local_shuffle_buffer_size": LOCAL_SHUFFLE_BUFFER}

UNKNOWN_DIST_TYPE = -1  # dist_type in views when the schema's value is null (authentic photos)

_JPEG_MAGIC = b"\xff\xd8\xff"


# -- reading ----------------------------------------------------------------------------------


def read_dataset(
    storage_uri: str,
    dataset: str,
    *,
    columns: list[str] | None = None,
    shuffle_files: bool | int = False,
    read_block_rows: int = READ_BLOCK_ROWS,
):
    """The dataset's rows as a ``ray.data.Dataset`` (encoded images; see the views below).

    Refuses a dataset without a complete manifest (``shards.ManifestError``) and reads exactly
    the shards the manifest lists, so a half-written or replaced version is never seen.
    ``shuffle_files``: True (or an int seed) shuffles shard order on every epoch, streaming.
    """
    import ray.data
    from ray.data.datasource import FileShuffleConfig

    ddir = shards.dataset_uri(storage_uri, dataset)
    manifest = shards.read_manifest(ddir)
    fs, _ = storage.resolve(ddir)
    paths = [storage.resolve(uri)[1] for uri in manifest.shard_uris()]
    shuffle = None
    if shuffle_files is not False:
        seed = None if shuffle_files is True else int(shuffle_files)
        shuffle = FileShuffleConfig(seed=seed)
    # Ray 2.60's default ("V2") Parquet reader lists files and reads footers through a fresh
    # actor pool on every execution: measured 1.3-1.6 s per epoch here for one shard, against
    # 0.2 s with the V1 reader (footers read once, when the Dataset is created). Epochs re-run
    # the read, so the V1 reader is used; the flag is only read when the Dataset is created.
    context = ray.data.DataContext.get_current()
    previous = context.use_datasource_v2
    context.use_datasource_v2 = False
    try:
        # Small blocks of encoded rows, so decoding spreads over all CPUs even for one shard.
        blocks = max(len(paths), math.ceil(manifest.row_count / max(1, read_block_rows)))
        ds = ray.data.read_parquet(
            paths, filesystem=fs, shuffle=shuffle, override_num_blocks=blocks
        )
    finally:
        context.use_datasource_v2 = previous
    # Ray Data reserves a share of the CPUs for each operator; on small nodes that held the
    # decode operator to one task at a time on 2 CPUs (measured: ~0.9 tasks running on
    # average, 650 -> 850 img/s without it). Read -> decode is a straight line, so the reserve
    # has nothing to protect here.
    ds.context.op_resource_reservation_enabled = False
    if columns is not None:
        ds = ds.select_columns(columns)
    return ds


def filter_domains(ds, dist_types: Iterable[int | None]):
    """Keep rows whose ``dist_type`` is in ``dist_types`` (None in the set keeps unknown ones).

    An expression filter, so Ray can push it into the Parquet read and skip the images of
    other domains without moving them (what domain selection needs).
    """
    from ray.data.expressions import col

    wanted = list(dist_types)
    if not wanted:
        raise ValueError("dist_types must name at least one distortion type (0..25 or None)")
    ints = sorted({int(t) for t in wanted if t is not None})
    bad = [t for t in ints if not 0 <= t <= 25]
    if bad:
        raise ValueError(f"dist_types must be 0 (pristine), 1..25 (KADID types) or None; got {bad}")
    expr = col("dist_type").is_in(ints) if ints else None
    if any(t is None for t in wanted):
        expr = col("dist_type").is_null() if expr is None else (expr | col("dist_type").is_null())
    return ds.filter(expr=expr)


# -- image operations (plain numpy/torch: testable without Ray) -------------------------------


def decode_image(data: bytes) -> np.ndarray:
    """Encoded bytes -> (3, H, W) uint8 RGB. JPEG through torchvision, the rest through Pillow."""
    if data[:3] == _JPEG_MAGIC:
        import torch
        import torchvision.io as tvio

        with warnings.catch_warnings():
            # bytes are read-only; torch warns about it but decode_jpeg only reads them.
            warnings.simplefilter("ignore", UserWarning)
            raw = torch.frombuffer(data, dtype=torch.uint8)
        try:
            return tvio.decode_jpeg(raw, mode=tvio.ImageReadMode.RGB).numpy()  # (3, H, W)
        except RuntimeError:
            pass  # e.g. CMYK or lossless JPEG: let Pillow try
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"))  # (H, W, 3)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def ensure_min_size(chw: np.ndarray, crop: int) -> np.ndarray:
    """Resize up (bilinear, aspect kept) so both sides are >= crop; no-op for large images."""
    _, h, w = chw.shape
    if h >= crop and w >= crop:
        return chw
    scale = crop / min(h, w)
    new_w, new_h = max(crop, round(w * scale)), max(crop, round(h * scale))
    im = Image.fromarray(chw.transpose(1, 2, 0)).resize((new_w, new_h), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1))


def random_crop(chw: np.ndarray, crop: int, rng: np.random.Generator, flip: bool) -> np.ndarray:
    """One (3, crop, crop) crop at a uniform position, mirrored left-right with p=0.5 if flip."""
    chw = ensure_min_size(chw, crop)
    _, h, w = chw.shape
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    out = chw[:, top : top + crop, left : left + crop]
    if flip and rng.random() < 0.5:
        out = out[:, :, ::-1]
    return out


def image_rng(seed: int | None, *keys: int | str) -> np.random.Generator:
    """A generator for one image: reproducible from (seed, keys) when seeded, fresh otherwise.

    Keyed by image id (not by position) so the crops do not depend on how Ray cut the blocks.
    """
    if seed is None:
        return np.random.default_rng()
    parts = [int(seed) & 0xFFFFFFFF]
    for key in keys:
        parts.append(zlib.crc32(key.encode()) if isinstance(key, str) else int(key) & 0xFFFFFFFF)
    return np.random.default_rng(parts)


def _execution_index() -> int:
    """How many times this Ray Data pipeline has completed before (i.e. the epoch, from 0).

    Ray increments the dataset context's execution index after each complete pass and ships
    the context to every task; seeded crops use it so each epoch gets new, reproducible crops.
    """
    from ray.data import DataContext

    return int(getattr(DataContext.get_current(), "_execution_idx", 0))


def _dist_type_array(column) -> np.ndarray:
    arr = pa.array(column) if not isinstance(column, pa.ChunkedArray | pa.Array) else column
    return np.asarray(pc.fill_null(arr, UNKNOWN_DIST_TYPE).to_numpy(zero_copy_only=False)).astype(
        np.int16
    )


def _level_array(batch: pa.Table) -> np.ndarray:
    """``dist_level`` as int16, 0 where unknown (pristine or authentic images)."""
    if "dist_level" not in batch.column_names:
        return np.zeros(batch.num_rows, dtype=np.int16)
    column = batch.column("dist_level")
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False)).astype(np.int16)


def _score_array(column) -> np.ndarray:
    arr = pa.array(column) if not isinstance(column, pa.ChunkedArray | pa.Array) else column
    return np.asarray(pc.fill_null(arr, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def _train_batch(
    batch: pa.Table, crop: int, seed: int | None, epoch: int, hflip: bool = True
) -> dict:
    n = batch.num_rows
    epoch = epoch + _execution_index()
    ids = batch.column("image_id").to_pylist()
    fresh = np.random.default_rng() if seed is None else None  # one per batch: cheaper
    # Rows leave in a random order: a batch bundles several (randomly ordered) read blocks,
    # so this mixes blocks at no cost, before the consumer's local shuffle buffer.
    order = (fresh if fresh is not None else image_rng(seed, epoch, ids[0], n)).permutation(n)
    images = np.empty((n, 3, crop, crop), dtype=np.uint8)  # (B, 3, crop, crop)
    encoded = batch.column("image").to_pylist()
    for out, i in enumerate(order):
        rng = fresh if fresh is not None else image_rng(seed, epoch, ids[i])
        images[out] = random_crop(decode_image(encoded[i]), crop, rng, flip=hflip)
    return {
        "image": images,
        "score": _score_array(batch.column("score"))[order],
        "dist_type": _dist_type_array(batch.column("dist_type"))[order],
        "image_id": np.asarray(ids, dtype=object)[order],
    }


def _eval_batch(batch: pa.Table, crop: int, num_crops: int, seed: int | None) -> dict:
    n = batch.num_rows
    images = np.empty((n * num_crops, 3, crop, crop), dtype=np.uint8)  # (B * N, 3, crop, crop)
    ids = batch.column("image_id").to_pylist()
    for i, data in enumerate(batch.column("image").to_pylist()):
        chw = decode_image(data)
        rng = image_rng(seed, ids[i])
        for k in range(num_crops):
            images[i * num_crops + k] = random_crop(chw, crop, rng, flip=False)
    repeat = np.repeat
    return {
        "image": images,
        "score": repeat(_score_array(batch.column("score")), num_crops),
        "dist_type": repeat(_dist_type_array(batch.column("dist_type")), num_crops),
        "dist_level": repeat(_level_array(batch), num_crops),
        "image_id": repeat(np.asarray(ids, dtype=object), num_crops),
        "crop_index": np.tile(np.arange(num_crops, dtype=np.int16), n),
    }


def _check_crop(crop: int) -> None:
    if not isinstance(crop, int) or crop < 1:
        raise ValueError(f"crop must be a positive int (pixels), got {crop!r}")


def training_view(
    ds,
    crop: int = DEFAULT_CROP,
    seed: int | None = None,
    *,
    epoch: int = 0,
    block_shuffle: bool = True,
    cache_encoded: bool = False,
    batch_size: int = DECODE_BATCH,
    hflip: bool = True,
):
    """Rows ``image`` (3, crop, crop) uint8, ``score``, ``dist_type``, ``image_id``.

    Each pass (epoch) decodes every image again and takes one uniformly placed crop, mirrored
    left-right with probability 0.5 (``hflip=False``: never mirrored). ``seed=None``: fresh randomness each epoch. ``seed=int``:
    the crops of image X in epoch e are a function of (seed, e, X), so a rerun repeats them and
    each epoch still differs (the epoch is Ray's execution count of this view, plus ``epoch``).
    ``score`` is NaN and ``dist_type`` is -1 where the dataset has nulls (unlabelled/authentic).

    ``cache_encoded=True`` reads the shards once, now, and keeps the *encoded* rows in Ray's
    object store; epochs then only decode. The block shuffle already holds the whole encoded
    dataset in the object store during every epoch, so this costs no extra memory and saves
    re-reading the shards from storage each epoch (measured: see docs/data.md, benchmark).

    Iterate with ``local_shuffle_buffer_size`` (``TRAIN_ITER_KWARGS``) for the local shuffle.
    """
    _check_crop(crop)
    if cache_encoded:
        ds = ds.materialize()
    if block_shuffle:
        ds = ds.randomize_block_order(seed=seed)
    return ds.map_batches(
        _train_batch,
        batch_size=batch_size,
        batch_format="pyarrow",
        fn_kwargs={"crop": crop, "seed": seed, "epoch": epoch, "hflip": hflip},
        zero_copy_batch=True,
    )


def evaluation_view(
    ds,
    crop: int = DEFAULT_CROP,
    num_crops: int = DEFAULT_EVAL_CROPS,
    seed: int | None = 0,
    *,
    batch_size: int = DECODE_BATCH // DEFAULT_EVAL_CROPS + 1,
):
    """``num_crops`` random crops per image (no flip), one row each: ``image`` (3, crop, crop)
    uint8, ``score``, ``dist_type``, ``dist_level`` (0 where unknown), ``image_id``,
    ``crop_index`` (0..num_crops-1).

    Average predictions per ``image_id`` to score an image, as the paper does. Seeded by
    default (crops depend on (seed, image_id) only), so every evaluation sees the same crops.
    """
    _check_crop(crop)
    if not isinstance(num_crops, int) or num_crops < 1:
        raise ValueError(f"num_crops must be a positive int, got {num_crops!r}")
    return ds.map_batches(
        _eval_batch,
        batch_size=batch_size,
        batch_format="pyarrow",
        fn_kwargs={"crop": crop, "num_crops": num_crops, "seed": seed},
        zero_copy_batch=True,
    )


# -- the classifier's on-the-fly view: references distorted afresh every epoch ---------------

ONTHEFLY_TASK_SAMPLES = 256
"""Samples one on-the-fly task makes (its references x ``samples_per_ref``): small enough that
the first batch arrives within a second or two and tasks spread over every CPU, large enough
that per-task overhead stays small."""


def onthefly_block_rows(samples_per_ref: int) -> int:
    """References per read block (= per on-the-fly task) for ``read_dataset(read_block_rows=)``."""
    return max(1, math.ceil(ONTHEFLY_TASK_SAMPLES / max(1, int(samples_per_ref))))


def _reference_hwc(data: bytes) -> np.ndarray:
    return np.ascontiguousarray(decode_image(data).transpose(1, 2, 0))  # (H, W, 3) uint8


def _draw_class(rng: np.random.Generator, num_classes: int) -> tuple[int, int]:
    """A (type, level) uniform over the classifier's classes x 5 levels (type 0: pristine)."""
    low = 1 if num_classes == 25 else 0
    dist_type = int(rng.integers(low, 26))
    return dist_type, (int(rng.integers(1, 6)) if dist_type else 0)


def _distort(reference: np.ndarray, dist_type: int, level: int, seed: int) -> np.ndarray:
    """The whole reference distorted as the generator does ((H, W, 3) uint8); type 0 = as is."""
    from dgqa_ray import distortions

    if dist_type == 0:
        return reference
    return distortions.apply(reference, dist_type, level, seed=seed)


def _distort_groups_on_device(
    references: list[np.ndarray], draws: list[tuple[int, int, int, int]], device: str
) -> list[np.ndarray]:
    """Batched distortion on ``device``: samples of one (type, level, size) go through
    ``distortions.apply_batch`` together. ``draws``: (reference index, type, level, seed)."""
    import torch

    from dgqa_ray import distortions

    out: list[np.ndarray | None] = [None] * len(draws)
    groups: dict[tuple[int, int, tuple[int, ...]], list[int]] = {}
    for k, (ref, dist_type, level, _) in enumerate(draws):
        groups.setdefault((dist_type, level, references[ref].shape), []).append(k)
    for (dist_type, level, _), members in groups.items():
        if dist_type == 0:
            for k in members:
                out[k] = references[draws[k][0]]
            continue
        stack = np.stack([references[draws[k][0]] for k in members])  # (n, H, W, 3)
        batch = torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous().to(device)
        done = distortions.apply_batch(batch, dist_type, level, seed=draws[members[0]][3])
        host = done.permute(0, 2, 3, 1).cpu().numpy()
        for k, image in zip(members, host, strict=True):
            out[k] = image
    return out  # type: ignore[return-value]


def _onthefly_train_batch(
    batch: pa.Table,
    crop: int,
    samples_per_ref: int,
    seed: int | None,
    epoch: int,
    hflip: bool,
    num_classes: int,
    device: str,
) -> dict:
    epoch = epoch + _execution_index()
    ids = batch.column("image_id").to_pylist()
    references = [_reference_hwc(b) for b in batch.column("image").to_pylist()]
    fresh = np.random.default_rng() if seed is None else None
    draws, rngs = [], []
    for i, ref_id in enumerate(ids):
        for r in range(samples_per_ref):
            rng = fresh if fresh is not None else image_rng(seed, epoch, ref_id, r)
            dist_type, level = _draw_class(rng, num_classes)
            draws.append((i, dist_type, level, int(rng.integers(2**31))))
            rngs.append(rng)
    if device == "cpu":
        distorted = [_distort(references[i], t, lv, s) for i, t, lv, s in draws]
    else:
        distorted = _distort_groups_on_device(references, draws, device)
    n = len(draws)
    order = (fresh if fresh is not None else image_rng(seed, epoch, ids[0], -1)).permutation(n)
    images = np.empty((n, 3, crop, crop), dtype=np.uint8)  # (N, 3, crop, crop)
    for out, k in enumerate(order):
        chw = np.ascontiguousarray(distorted[k].transpose(2, 0, 1))
        images[out] = random_crop(chw, crop, rngs[k], flip=hflip)
    return {
        "image": images,
        "dist_type": np.asarray([draws[k][1] for k in order], dtype=np.int16),
        "dist_level": np.asarray([draws[k][2] for k in order], dtype=np.int16),
        "score": np.full(n, np.nan),
        "image_id": np.asarray(
            [f"{ids[draws[k][0]]}#{k % samples_per_ref}" for k in order], dtype=object
        ),
    }


def onthefly_training_view(
    ds,
    crop: int = DEFAULT_CROP,
    samples_per_ref: int = 5,
    seed: int | None = None,
    *,
    epoch: int = 0,
    hflip: bool = True,
    num_classes: int = 25,
    device: str = "cpu",
    num_gpus: float = 0.0,
    block_shuffle: bool = True,
):
    """The classifier's training data made on the fly from pristine references.

    Every pass (epoch) gives each reference row of ``ds`` ``samples_per_ref`` samples; each
    sample gets its own (type, level), uniform over the classes (types 1..25; with 26 classes
    also 0 = pristine, left as is) x levels 1..5, is distorted **on the whole reference** by
    ``distortions.apply`` (as the reference generator does: colour blocks and patches keep their
    sizes relative to the image), then cut to one uniformly placed ``crop`` (mirrored with
    p = 0.5 when ``hflip``). Rows: ``image`` (3, crop, crop) uint8, ``dist_type``,
    ``dist_level``, ``score`` (NaN), ``image_id`` (``<reference>#<sample>``).

    ``seed`` None: fresh draws every epoch; an int: the draws of epoch e are a function of
    (seed, e, reference, sample), so a rerun repeats them and each epoch differs (e counts
    Ray's executions of the view, plus ``epoch``). ``device="cuda"`` (with ``num_gpus`` per
    task) distorts batched on the GPU, samples grouped by (type, level, size); the CPU path
    runs the single-image NumPy engine, faster there than the batched torch one
    (docs/benchmarks.md). Read ``ds`` with ``read_block_rows=onthefly_block_rows(...)`` so
    each task makes ~``ONTHEFLY_TASK_SAMPLES`` samples.
    """
    _check_crop(crop)
    if not isinstance(samples_per_ref, int) or samples_per_ref < 1:
        raise ValueError(f"samples_per_ref must be a positive int, got {samples_per_ref!r}")
    if num_classes not in (25, 26):
        raise ValueError(f"num_classes must be 25 or 26, got {num_classes!r}")
    if block_shuffle:
        ds = ds.randomize_block_order(seed=seed)
    extra = {"num_gpus": num_gpus} if num_gpus else {}
    return ds.map_batches(
        _onthefly_train_batch,
        batch_size=None,  # one read block (onthefly_block_rows references) per task
        batch_format="pyarrow",
        fn_kwargs={
            "crop": crop,
            "samples_per_ref": samples_per_ref,
            "seed": seed,
            "epoch": epoch,
            "hflip": hflip,
            "num_classes": num_classes,
            "device": device,
        },
        zero_copy_batch=True,
        **extra,
    )


def onthefly_samples_per_reference(n_images: int, n_references: int) -> int:
    """Validation samples per held-out reference for a set of about ``n_images``."""
    if n_references < 1:
        raise ValueError("the validation split holds no reference")
    return max(1, round(n_images / n_references))


def _onthefly_eval_batch(
    batch: pa.Table, crop: int, num_crops: int, per_ref: int, seed: int, num_classes: int
) -> dict:
    ids = batch.column("image_id").to_pylist()
    low = 1 if num_classes == 25 else 0
    n_types = 26 - low
    rows = len(ids) * per_ref * num_crops
    images = np.empty((rows, 3, crop, crop), dtype=np.uint8)
    types = np.empty(rows, dtype=np.int16)
    levels = np.empty(rows, dtype=np.int16)
    names = np.empty(rows, dtype=object)
    row = 0
    for ref_id, data in zip(ids, batch.column("image").to_pylist(), strict=True):
        reference = _reference_hwc(data)
        # Consecutive types from a per-reference offset: every reference covers its share of
        # the classes in turn, so the whole set is balanced over types.
        offset = zlib.crc32(ref_id.encode()) % n_types
        for k in range(per_ref):
            rng = image_rng(seed, "val", ref_id, k)
            dist_type = low + (offset + k) % n_types
            level = int(rng.integers(1, 6)) if dist_type else 0
            chw = np.ascontiguousarray(
                _distort(reference, dist_type, level, int(rng.integers(2**31))).transpose(2, 0, 1)
            )
            for _ in range(num_crops):
                images[row] = random_crop(chw, crop, rng, flip=False)
                types[row], levels[row] = dist_type, level
                names[row] = f"{ref_id}#{k}"
                row += 1
    return {
        "image": images,
        "score": np.full(rows, np.nan),
        "dist_type": types,
        "dist_level": levels,
        "image_id": names,
        "crop_index": np.tile(np.arange(num_crops, dtype=np.int16), rows // num_crops),
    }


def onthefly_evaluation_view(
    ds,
    crop: int = DEFAULT_CROP,
    num_crops: int = DEFAULT_EVAL_CROPS,
    per_ref: int = 25,
    seed: int = 0,
    *,
    num_classes: int = 25,
):
    """A fixed, seeded validation set made from held-out references: ``per_ref`` distorted
    images per reference (types dealt in turn so that the set is balanced, levels drawn
    uniformly, both a function of (seed, reference, k) only, so every epoch and every rerun
    sees the same images), ``num_crops`` seeded crops each. Rows as ``evaluation_view``'s plus
    ``dist_level``; ``image_id`` is ``<reference>#<k>``."""
    _check_crop(crop)
    if not isinstance(num_crops, int) or num_crops < 1:
        raise ValueError(f"num_crops must be a positive int, got {num_crops!r}")
    return ds.map_batches(
        _onthefly_eval_batch,
        batch_size=None,
        batch_format="pyarrow",
        fn_kwargs={
            "crop": crop,
            "num_crops": num_crops,
            "per_ref": per_ref,
            "seed": seed,
            "num_classes": num_classes,
        },
        zero_copy_batch=True,
    )
