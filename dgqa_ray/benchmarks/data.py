"""Data benchmark: the Ray Data training view reading JPEG shards from S3 vs a torch DataLoader.

One run, same cores, same work per image (read the encoded bytes, decode, one random 224 crop,
random horizontal flip, uint8 CHW, batches of 32):

- *Ray Data*: ``read_dataset`` -> ``training_view`` over Parquet shards on an S3 server (a local
  SeaweedFS started here, or any ``storage_uri`` you pass), iterated with ``iter_torch_batches``
  and the local shuffle buffer, as a training loop would; also with ``cache_encoded=True``
  (shards read from S3 once, encoded rows kept in the object store), and the streaming variant
  (no block-order barrier, shard order shuffled instead) for datasets larger than the object
  store.
- *DataLoader*: a map-style ``torch.utils.data.Dataset`` over the same JPEG files on local disk,
  ``num_workers`` = the same core count, ``shuffle=True``.

It also times each stage on one core (reading the shards from S3, decoding, cropping) and the
Ray pipeline with decoding switched off, so the table says which stage limits the rate. Epochs
of the pipelines alternate (A, B, C, A, B, C, ...) so background load hits them alike.

Usage (Python; ``jobs/benchmark.py data`` wraps it)::

    from dgqa_ray.benchmarks.data import run_data_benchmark
    rows = run_data_benchmark(num_images=2048, epochs=3)   # prints the table

Entry point: :func:`run_data_benchmark` (``jobs/benchmark.py data`` calls it).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dgqa_ray import storage
from dgqa_ray.data import pipelines, shards
from dgqa_ray.ray_session import init_ray

log = logging.getLogger(__name__)

IMAGE_SIZE = (512, 384)  # (W, H): KonIQ-10k's and KADID-10k's resolution
# scikit-image's colour photos (no download needed); each image is a random rescaled crop.
_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)


@dataclass
class BenchRow:
    """One line of the result table."""

    pipeline: str
    images: int
    seconds: float
    images_per_s: float
    ratio: float | None  # vs the DataLoader's images/s (end-to-end rows only)
    cores: int
    note: str = ""


# -- data -----------------------------------------------------------------------------------


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in _PHOTOS:
        image = getattr(data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo pair: left view
        out.append(np.ascontiguousarray(image[..., :3]))
    return out


def make_jpegs(folder: str, count: int, seed: int = 0) -> list[str]:
    """``count`` natural-looking 512x384 JPEGs (random rescaled crops of sample photos)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(p) for p in _photos()]
    width, height = IMAGE_SIZE
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        scale = max(width / w, height / h) * rng.uniform(1.0, 1.6)
        big = photo.resize((max(width, round(w * scale)), max(height, round(h * scale))))
        left = int(rng.integers(0, big.width - width + 1))
        top = int(rng.integers(0, big.height - height + 1))
        tile = big.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = os.path.join(folder, f"img{i:06d}.jpg")
        tile.save(path, "JPEG", quality=int(rng.integers(80, 96)))
        paths.append(path)
    return paths


def _write_table(folder: str, paths: list[str], seed: int) -> str:
    import pandas as pd

    rng = np.random.default_rng(seed)
    table = os.path.join(folder, "index.csv")
    pd.DataFrame({"path": paths, "score": rng.uniform(1, 5, len(paths))}).to_csv(table, index=False)
    return table


# -- the DataLoader baseline -----------------------------------------------------------------


class JpegFolderDataset:
    """Map-style torch dataset: file -> bytes -> decode -> random crop + flip -> uint8 CHW."""

    def __init__(self, paths: list[str], scores: np.ndarray, crop: int) -> None:
        self.paths = paths
        self.scores = scores
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        with open(self.paths[i], "rb") as f:
            data = f.read()
        chw = pipelines.random_crop(
            pipelines.decode_image(data), self.crop, np.random.default_rng(), flip=True
        )
        return torch.from_numpy(np.ascontiguousarray(chw)), float(self.scores[i])


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core, as Ray workers run


def _count(batch) -> int:
    return len(batch[0]) if isinstance(batch, list | tuple) else len(batch["image"])


def _time_interleaved(
    pipelines_: dict[str, Callable[[], object]], epochs: int, images: int
) -> dict[str, float]:
    """Seconds per pipeline for ``epochs`` passes, after one untimed warm-up pass each.

    Epochs alternate between the pipelines (A, B, A, B, ...) so that a change in background
    load affects all of them alike instead of whichever happened to run last.
    """
    for make_iter in pipelines_.values():  # warm-up: worker start, imports, first reads
        for _batch in make_iter():
            pass
    seconds = dict.fromkeys(pipelines_, 0.0)
    for _ in range(epochs):
        for name, make_iter in pipelines_.items():
            start = time.perf_counter()
            seen = sum(_count(batch) for batch in make_iter())
            seconds[name] += time.perf_counter() - start
            assert seen == images, (name, seen, images)
    return seconds


# -- stage timings ---------------------------------------------------------------------------


def _stage_rows(manifest: shards.Manifest, crop: int, cores: int, sample: int) -> list[BenchRow]:
    """Per-core cost of each stage, measured in this process on one core."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    images: list[bytes] = []
    for uri in manifest.shard_uris():
        with storage.open_input(uri) as f:
            images.extend(pq.read_table(f, columns=["image"]).column("image").to_pylist())
    read_s = time.perf_counter() - start
    n = len(images)
    mb = sum(len(b) for b in images) / 1e6

    sample_images = images[:sample]
    pipelines.decode_image(sample_images[0])  # warm-up: the first call imports torchvision
    start = time.perf_counter()
    decoded = [pipelines.decode_image(b) for b in sample_images]
    decode_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for chw in decoded:
        np.ascontiguousarray(pipelines.random_crop(chw, crop, rng, flip=True))
    crop_s = time.perf_counter() - start

    k = len(sample_images)
    read_note = f"{mb / read_s:.0f} MB/s, {mb:.0f} MB"
    decode_note = f"x{cores} cores = {cores * k / decode_s:.0f} img/s"
    crop_note = f"x{cores} cores = {cores * k / crop_s:.0f} img/s"
    return [
        BenchRow("stage: read shards from S3 (1 core)", n, read_s, n / read_s, None, 1, read_note),
        BenchRow(
            "stage: decode JPEG 512x384 (1 core)", k, decode_s, k / decode_s, None, 1, decode_note
        ),
        BenchRow(f"stage: crop {crop} + flip (1 core)", k, crop_s, k / crop_s, None, 1, crop_note),
    ]


# -- the run ---------------------------------------------------------------------------------


def run_data_benchmark(
    num_images: int = 2048,
    *,
    crop: int = 224,
    batch_size: int = 32,
    epochs: int = 2,
    num_cpus: int | None = None,
    storage_uri: str | None = None,
    work_dir: str | None = None,
    shard_size_mb: float = shards.DEFAULT_SHARD_SIZE_MB,
    seed: int = 0,
) -> list[BenchRow]:
    """Run the benchmark and print the table; returns its rows.

    ``num_images`` JPEGs of 512x384 are generated in ``work_dir`` (a temporary folder if None)
    and ingested into shards under ``storage_uri``; None starts a SeaweedFS S3 server on
    loopback for the run (``s3://dgqa-bench/...``), otherwise any local path or ``s3://`` URI
    with credentials/endpoint from the environment. ``num_cpus`` (default: all cores) is both
    the local Ray instance's CPUs and the DataLoader's ``num_workers``. Each pipeline gets one
    untimed warm-up epoch, then ``epochs`` timed epochs.

    Starts Ray itself (after the S3 server, so that Ray workers inherit the server's settings);
    if Ray is already running in this process it is used as it is.
    """
    import ray
    import torch

    if num_images < batch_size:
        raise ValueError(f"num_images must be >= batch_size ({batch_size}), got {num_images}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    cores = num_cpus or os.cpu_count() or 1
    owns_dir = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix="dgqa-databench-")
    server = None
    previous_env = None
    started_ray = False
    try:
        t0 = time.perf_counter()
        jpeg_dir = os.path.join(work_dir, "jpeg")
        paths = make_jpegs(jpeg_dir, num_images, seed=seed)
        table = _write_table(work_dir, paths, seed)
        jpeg_mb = sum(os.path.getsize(p) for p in paths) / 1e6
        log.info(
            f"generated {num_images} JPEGs of 512x384 ({jpeg_mb:.0f} MB) in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        if storage_uri is None:
            from dgqa_ray.data.seaweedfs import SeaweedS3Server

            if ray.is_initialized():
                raise RuntimeError(
                    "run_data_benchmark starts its own S3 server, whose credentials Ray workers "
                    "must inherit: call it before ray.init(), or pass storage_uri"
                )
            server = SeaweedS3Server.start(os.path.join(work_dir, "seaweedfs"))
            previous_env = server.export_env()
            server.create_bucket("dgqa-bench")
            storage_uri = server.uri("dgqa-bench", "lake")
            log.info(f"SeaweedFS S3 server at {server.endpoint}")
        if not ray.is_initialized():
            init_ray(cores, include_dashboard=False, log_to_driver=False)
            started_ray = True
        ray.data.DataContext.get_current().enable_progress_bars = False

        from dgqa_ray.data.adapters import open_adapter
        from dgqa_ray.data.ingest import ingest

        adapter = open_adapter("custom", table, score_column="score", dataset_name="bench512")
        result = ingest(adapter, storage_uri, shard_size_mb=shard_size_mb, force=True)
        log.info(
            f"ingested into {result.shard_count} shard(s) at {result.dataset_dir} in "
            f"{result.seconds:.1f} s"
        )

        rows: list[BenchRow] = []

        # Ray Data: the training view exactly as training iterates it (built once, iterated
        # once per epoch; each iteration re-reads the shards and takes new crops).
        view = pipelines.training_view(pipelines.read_dataset(storage_uri, "bench512"), crop=crop)
        view = view.select_columns(["image", "score"])

        def ray_epoch():
            return view.iter_torch_batches(
                batch_size=batch_size, device="cpu", **pipelines.TRAIN_ITER_KWARGS
            )

        # The same view keeping the encoded rows in the object store after one read from S3.
        cached = pipelines.training_view(
            pipelines.read_dataset(storage_uri, "bench512"), crop=crop, cache_encoded=True
        ).select_columns(["image", "score"])

        def ray_cached_epoch():
            return cached.iter_torch_batches(
                batch_size=batch_size, device="cpu", **pipelines.TRAIN_ITER_KWARGS
            )

        # Streaming variant for datasets larger than the object store: no block-order barrier,
        # shard order shuffled per epoch instead (same local shuffle buffer).
        streaming = pipelines.training_view(
            pipelines.read_dataset(storage_uri, "bench512", shuffle_files=True),
            crop=crop,
            block_shuffle=False,
        ).select_columns(["image", "score"])

        def ray_streaming_epoch():
            return streaming.iter_torch_batches(
                batch_size=batch_size, device="cpu", **pipelines.TRAIN_ITER_KWARGS
            )

        # The same read without decoding: how fast encoded bytes flow from S3 through Ray Data.
        encoded = pipelines.read_dataset(storage_uri, "bench512", columns=["image", "score"])
        encoded = encoded.randomize_block_order()

        def ray_read_epoch():
            return encoded.iter_batches(batch_size=batch_size, batch_format="numpy")

        # The DataLoader baseline on the same cores.
        scores = np.random.default_rng(seed).uniform(1, 5, num_images)
        loader = torch.utils.data.DataLoader(
            JpegFolderDataset(paths, scores, crop),
            batch_size=batch_size,
            shuffle=True,
            num_workers=cores,
            persistent_workers=True,
            worker_init_fn=_worker_init,
        )

        def loader_epoch():
            return iter(loader)

        # Stage costs first, in this process alone (nothing else of ours running yet).
        stage_rows = _stage_rows(result.manifest, crop, cores, sample=min(256, num_images))
        images = epochs * num_images
        timed = _time_interleaved(
            {
                "loader": loader_epoch,
                "ray": ray_epoch,
                "ray_cached": ray_cached_epoch,
                "ray_streaming": ray_streaming_epoch,
                "read": ray_read_epoch,
            },
            epochs,
            num_images,
        )
        dl_s, ray_s, read_s = timed["loader"], timed["ray"], timed["read"]
        streaming_s, cached_s = timed["ray_streaming"], timed["ray_cached"]
        dl_rate = images / dl_s
        rows.append(
            BenchRow(
                "torch DataLoader, local JPEG files",
                images,
                dl_s,
                dl_rate,
                1.0,
                cores,
                f"num_workers={cores}",
            )
        )
        ray_note = f"{result.shard_count} shard(s), local shuffle {pipelines.LOCAL_SHUFFLE_BUFFER}"
        rows.append(
            BenchRow(
                "Ray Data training view, S3 shards",
                images,
                ray_s,
                images / ray_s,
                (images / ray_s) / dl_rate,
                cores,
                ray_note,
            )
        )
        rows.append(
            BenchRow(
                "  same, encoded rows cached (cache_encoded)",
                images,
                cached_s,
                images / cached_s,
                (images / cached_s) / dl_rate,
                cores,
                "S3 read once, then object store",
            )
        )
        rows.append(
            BenchRow(
                "  same, streaming (no block-order barrier)",
                images,
                streaming_s,
                images / streaming_s,
                (images / streaming_s) / dl_rate,
                cores,
                "block_shuffle=False, shuffle_files=True",
            )
        )
        rows.append(
            BenchRow(
                "Ray Data read only (no decode), S3 shards",
                images,
                read_s,
                images / read_s,
                None,
                cores,
                "encoded bytes, block shuffle",
            )
        )
        rows.extend(stage_rows)
        log.info(format_table(rows, machine=describe_machine(cores)))
        return rows
    finally:
        if started_ray:
            ray.shutdown()
        if server is not None:
            server.stop()
            server.restore_env(previous_env)
        if owns_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def describe_machine(cores: int) -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores on the machine, {cores} used"


def format_table(rows: list[BenchRow], machine: str = "") -> str:
    """The printed table; ends with the stage that costs the most CPU per image."""
    head = f"{'pipeline':<44} {'images':>7} {'seconds':>8} {'img/s':>8} {'ratio':>6}  note"
    lines = [f"machine: {machine}"] if machine else []
    lines += [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(
            f"{r.pipeline:<44} {r.images:>7} {r.seconds:>8.2f} {r.images_per_s:>8.0f} "
            f"{ratio:>6}  {r.note}"
        )
    stages = [r for r in rows if r.pipeline.startswith("stage:")]
    if stages:
        slowest = min(stages, key=lambda r: r.images_per_s)
        cost_ms = 1000.0 / slowest.images_per_s
        lines.append(
            f"limiting stage: {slowest.pipeline.removeprefix('stage: ')} "
            f"({cost_ms:.2f} ms per image per core)"
        )
    return "\n".join(lines)


def write_rows_csv(rows: list, path: str | os.PathLike) -> Path:
    """A benchmark's result rows (dataclasses, one kind) as a CSV table at ``path``, its folder
    made when missing; every benchmark writes its table this way."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return out
