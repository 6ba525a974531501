"""Ingestion: any adapter's dataset into Parquet shards of ``schema.SCHEMA``, in parallel on Ray.

What happens, in order:

1. The adapter's index is read and validated (bad labels fail here, before any image is read).
2. Its *source fingerprint* (SHA-256 of the schema version and the whole index: ids, labels and
   paths) is compared with the current manifest's: equal means "already ingested" and nothing is
   done, unless ``force``, or unless some of the images the last run skipped as bad now
   decode (they are re-read on every rerun: a fixed image is noticed). Other image files
   replaced in place under the same names are not noticed: pass ``force`` after editing them.
   An unpublished version folder left by a killed run is removed then.
3. Rows are shuffled (seeded by the fingerprint: training shuffles blocks of consecutive rows,
   which must not all show one reference image) and planned into shards of about
   ``shard_size_mb`` from the mean size of a sample of the image files. One Ray Data task per
   shard reads its images (a few threads, since reads from S3 wait on the network), decodes
   each with Pillow to verify it and get width/height, and streams the original encoded bytes
   into ``versions/<new version>/part-NNNNN.parquet``.
4. Images that do not decode, or have more than ``max_megapixels`` million pixels (64: checked
   before decoding), are skipped and listed in ``<dataset>/_reports/bad_images.csv``
   (image_id, path, reason). More than ``max_bad_fraction`` of them fails the run, naming that
   file, and publishes nothing.
5. The manifest is written last (``shards.write_manifest``); older versions are then deleted.

A run that fails anywhere before step 5 leaves the previous complete version readable: readers
only follow the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from dgqa_ray import storage

from . import shards
from .schema import INDEX_COLUMNS, SCHEMA, SCHEMA_VERSION

# Read this many images at once per shard task: S3 GETs wait on the network (~10-50 ms each on
# AWS), and pyarrow releases the GIL while waiting, so a few threads hide most of the latency.
IO_THREADS = 8
# How many file sizes to sample to plan shards: the mean of 64 is within a few % for datasets
# whose images share a resolution and format, which is all of them.
SIZE_SAMPLE = 64
FAIL_AFTER_ENV = "DGQA_INGEST_FAIL_AFTER_SHARDS"
BAD_REPORT_NAME = "bad_images.csv"

MAX_IMAGE_MEGAPIXELS = 64.0
"""Images larger than this are skipped as bad (``too large``), before they are decoded: the
paper's largest are SPAQ's 4000 x 3000 (12 MP), and Pillow's own limit (178 MP) would let a
144 MP image through with only a warning in a worker log."""

log = logging.getLogger(__name__)


class IngestionError(RuntimeError):
    """Ingestion refused to publish the dataset (too many bad images, nothing usable)."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingestion did, for the job to print."""

    dataset: str
    dataset_dir: str
    status: str  # "ingested" or "already ingested"
    row_count: int
    shard_count: int
    bad_count: int
    bad_report: str | None
    seconds: float
    manifest: shards.Manifest = field(repr=False)

    def summary(self) -> str:
        rate = self.row_count / self.seconds if self.seconds > 0 else float("nan")
        text = (
            f"{self.dataset}: {self.status}: {self.row_count} images in {self.shard_count} "
            f"shard(s) at {self.dataset_dir} ({self.seconds:.1f} s, {rate:.0f} img/s)"
        )
        if self.bad_count:
            text += f"; {self.bad_count} bad image(s) skipped, listed in {self.bad_report}"
        return text


def source_fingerprint(index: pd.DataFrame) -> str:
    """SHA-256 of the schema version and the index (sorted by image_id, so row order is moot)."""
    frame = index[INDEX_COLUMNS].sort_values("image_id", kind="stable").reset_index(drop=True)
    digest = hashlib.sha256(f"schema={SCHEMA_VERSION}\n".encode())
    digest.update(frame.to_csv(index=False, lineterminator="\n", float_format="%.17g").encode())
    return digest.hexdigest()


def _check_index(index: pd.DataFrame, dataset: str) -> None:
    if list(index.columns) != INDEX_COLUMNS:
        raise ValueError(
            f"adapter for {dataset!r} returned columns {list(index.columns)}, expected "
            f"schema.INDEX_COLUMNS {INDEX_COLUMNS}"
        )
    if len(index) == 0:
        raise ValueError(f"adapter for {dataset!r} returned an empty index")
    duplicated = index["image_id"].duplicated(keep=False)
    if duplicated.any():
        dup = index["image_id"][duplicated].iloc[0]
        rows = [int(i) + 1 for i in np.flatnonzero((index["image_id"] == dup).to_numpy())]
        paths = index.loc[index["image_id"] == dup, "path"].head(2).tolist()
        raise ValueError(
            f"adapter for {dataset!r} returned duplicate image_id {dup!r} at index rows "
            f"{rows[:5]} (paths {paths}); image ids must be unique (set the id column)"
        )


def plan_shards(
    index: pd.DataFrame, shard_size_mb: float, sample: int = SIZE_SAMPLE
) -> list[tuple[int, int]]:
    """[(start, stop)) row ranges of about ``shard_size_mb`` each, from sampled file sizes."""
    n = len(index)
    picks = np.unique(np.linspace(0, n - 1, num=min(sample, n)).round().astype(int))
    paths = index["path"].to_numpy()[picks]

    def size(path: str) -> int:
        try:
            return storage.file_size(path)
        except OSError:
            return 0  # a missing/unreadable file is reported later, by the shard task

    with ThreadPoolExecutor(IO_THREADS) as pool:
        sizes = [s for s in pool.map(size, paths) if s > 0]
    mean = float(np.mean(sizes)) if sizes else 1.0
    rows_per_shard = max(1, int(shard_size_mb * 1024 * 1024 // max(mean, 1.0)))
    count = math.ceil(n / rows_per_shard)
    # Even shards: 1001 rows at 500 per shard -> 334/334/333, not 500/500/1.
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def verify_image(data: bytes, max_megapixels: float = MAX_IMAGE_MEGAPIXELS) -> tuple[int, int]:
    """(width, height) of an encoded image after a full decode; raises if it does not decode,
    or (before decoding) if it has more than ``max_megapixels`` million pixels.

    ``Image.verify`` alone misses truncated files, so the pixels are actually decoded.
    """
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        if width * height > max_megapixels * 1e6:
            raise ValueError(
                f"too large: {width}x{height} = {width * height / 1e6:.1f} MP, more than "
                f"max_image_megapixels={max_megapixels:g}"
            )
        im.load()
    if width <= 0 or height <= 0:
        raise ValueError(f"image has size {width}x{height}")
    return width, height


def read_or_error(path: str) -> tuple[bytes | None, str | None]:
    """``(bytes, None)``, or ``(None, why)`` when the file cannot be read (reported per image:
    the caller decides on the share of failures)."""
    try:
        return storage.read_bytes(path), None
    except Exception as e:  # reported per image, the run decides on the share of failures
        return None, f"read failed: {type(e).__name__}: {e}"


def _rows_table(rows: pd.DataFrame, images: list[bytes], sizes: list[tuple[int, int]]) -> pa.Table:
    """Index rows plus their bytes and sizes as a table of exactly SCHEMA."""
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    columns = {
        "image_id": pa.array(rows["image_id"].astype(str).tolist(), pa.string()),
        "dataset": pa.array(rows["dataset"].astype(str).tolist(), pa.string()),
        "ref_id": pa.array(rows["ref_id"].astype(str).tolist(), pa.string()),
        "dist_type": pa.array(rows["dist_type"].astype("Int16"), pa.int16(), from_pandas=True),
        "dist_level": pa.array(rows["dist_level"].astype("Int16"), pa.int16(), from_pandas=True),
        "subset": pa.array(rows["subset"].astype("string"), pa.string(), from_pandas=True),
        "mos": pa.array(rows["mos"].astype("float64"), pa.float64(), from_pandas=True),
        "score": pa.array(rows["score"].astype("float64"), pa.float64(), from_pandas=True),
        "width": pa.array(widths, pa.int32()),
        "height": pa.array(heights, pa.int32()),
        "image": pa.array(images, pa.binary()),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write_shard(
    rows: pd.DataFrame,
    shard_uri: str,
    relpath: str,
    row_group_mb: float,
    chunk: int = 32,
    max_megapixels: float = MAX_IMAGE_MEGAPIXELS,
) -> dict:
    """Read, verify and write one shard's images; what the Ray task runs.

    Returns a plain dict of scalars (Ray Data rows become Arrow; fixed types avoid schema
    clashes between blocks): the shard's info (``path`` is "" when every image was bad and no
    file was kept) and the bad images as a JSON list of [image_id, path, reason].
    """
    bad_ids: list[str] = []
    bad_paths: list[str] = []
    bad_reasons: list[str] = []
    writer = shards.ShardFileWriter(shard_uri, row_group_mb)
    try:
        with ThreadPoolExecutor(IO_THREADS) as pool:
            for start in range(0, len(rows), chunk):
                part = rows.iloc[start : start + chunk]
                keep, images, sizes = [], [], []
                for i, (data, error) in enumerate(pool.map(read_or_error, part["path"])):
                    if data is not None:
                        try:
                            sizes.append(verify_image(data, max_megapixels))
                            images.append(data)
                            keep.append(i)
                            continue
                        except UnidentifiedImageError:
                            error = "decode failed: not a recognised image format"
                        except Exception as e:  # any decoder failure means "bad image"
                            reason = str(e)
                            error = (
                                reason
                                if reason.startswith("too large")
                                else f"decode failed: {type(e).__name__}: {e}"
                            )
                    bad_ids.append(str(part["image_id"].iloc[i]))
                    bad_paths.append(str(part["path"].iloc[i]))
                    bad_reasons.append(str(error))
                if keep:
                    writer.write(_rows_table(part.iloc[keep], images, sizes))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    result = {"path": "", "rows": 0, "bytes": 0, "sha256": ""}
    if writer.rows > 0:
        info = writer.info(relpath)
        result = {"path": info.path, "rows": info.rows, "bytes": info.bytes, "sha256": info.sha256}
    else:
        storage.delete_file(shard_uri)
    bad = [list(t) for t in zip(bad_ids, bad_paths, bad_reasons, strict=True)]
    result.update(bad=json.dumps(bad), total=len(rows))
    return result


def _write_bad_report(uri: str, bad: list[tuple[str, str, str]]) -> None:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["image_id", "path", "reason"])
    out.writerows(sorted(bad))
    storage.write_text_atomic(uri, buf.getvalue())


def _bad_images_now_readable(report_uri: str, max_megapixels: float) -> int:
    """How many images of the last run's bad-image report read and decode now (fixed since)."""
    try:
        report = pd.read_csv(io.StringIO(storage.read_text(report_uri)), dtype=str)
    except (OSError, ValueError):
        return 0
    fixed = 0
    for path in report.get("path", pd.Series(dtype=str)).dropna():
        data, error = read_or_error(path)
        if data is None:
            continue
        try:
            verify_image(data, max_megapixels)
        except Exception:
            continue
        fixed += 1
    return fixed


def _fail_after_from_env() -> int | None:
    value = os.environ.get(FAIL_AFTER_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{FAIL_AFTER_ENV} must be an integer, got {value!r}") from None


def ingest(
    adapter,
    storage_uri: str,
    *,
    shard_size_mb: float = shards.DEFAULT_SHARD_SIZE_MB,
    max_bad_fraction: float = 0.01,
    force: bool = False,
    row_group_mb: float = shards.DEFAULT_ROW_GROUP_MB,
    num_cpus: int | None = None,
    fail_after_shards: int | None = None,
    max_megapixels: float = MAX_IMAGE_MEGAPIXELS,
) -> IngestResult:
    """Ingest ``adapter``'s dataset under ``<storage_uri>/<adapter.name>/``; see the module doc.

    ``num_cpus`` caps the number of shard tasks running at once (None: as many as Ray has CPUs).
    ``fail_after_shards`` (or the env var ``DGQA_INGEST_FAIL_AFTER_SHARDS``) raises
    ``shards.IngestionInterrupted`` once that many shards are written and before the manifest:
    the injected crash that tests use to show a partial dataset is never read.
    """
    if shard_size_mb <= 0:
        raise ValueError(f"shard_size_mb must be > 0, got {shard_size_mb}")
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1 or None, got {num_cpus}")
    if fail_after_shards is None:
        fail_after_shards = _fail_after_from_env()

    started = time.perf_counter()
    dataset = adapter.name
    index = adapter.index()
    _check_index(index, dataset)
    fingerprint = source_fingerprint(index)
    ddir = shards.dataset_uri(storage_uri, dataset)
    report_uri = shards.reports_uri(ddir, BAD_REPORT_NAME)

    if not force and storage.exists(shards.manifest_uri(ddir)):
        try:
            current = shards.read_manifest(ddir)
        except shards.ManifestError as e:
            log.info(f"{dataset}: existing dataset is not usable ({e}); ingesting again")
        else:
            bad = int(current.extra.get("bad_images", 0))
            same = current.source_fingerprint == fingerprint
            fixed = _bad_images_now_readable(report_uri, max_megapixels) if bad and same else 0
            if current.source_fingerprint == fingerprint and fixed:
                log.info(
                    f"{dataset}: {fixed} of the {bad} image(s) skipped as bad last time now "
                    "decode; ingesting again"
                )
            elif current.source_fingerprint == fingerprint:
                # A killed ingestion can leave an unpublished version folder: nothing reads
                # it, and it must not pile up.
                stale = shards.remove_other_versions(ddir, keep=current.version)
                if stale:
                    log.info(f"{dataset}: removed {len(stale)} unpublished version folder(s)")
                note = (
                    f"; {bad} bad image(s) were skipped and still are, listed in {report_uri}"
                    if bad
                    else ""
                )
                log.info(
                    f"{dataset}: already ingested at {ddir} (same source fingerprint{note}); "
                    "use --force"
                )
                return IngestResult(
                    dataset,
                    ddir,
                    "already ingested",
                    current.row_count,
                    len(current.shards),
                    bad,
                    report_uri if bad else None,
                    time.perf_counter() - started,
                    current,
                )
            else:
                log.info(
                    f"{dataset}: source changed since the last ingestion; ingesting a new version"
                )

    # Rows are stored in a random order, seeded by the fingerprint (so a rerun writes the same
    # shards): the published orders group a reference's distorted versions together, and
    # training shuffles by blocks of consecutive rows, which must then be random samples.
    seed = int(fingerprint[:8], 16)
    index = index.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    plan = plan_shards(index, shard_size_mb)
    version = shards.new_version_id()
    vdir = shards.version_uri(ddir, version)
    log.info(
        f"{dataset}: {len(index)} images from {adapter.root} -> {len(plan)} shard(s) of about "
        f"{shard_size_mb:g} MB in {vdir}"
    )

    import ray

    index_ref = ray.put(index)
    items = [
        {"shard": i, "start": a, "stop": b, "relpath": f"{shards.VERSIONS_DIR}/{version}/"}
        for i, (a, b) in enumerate(plan)
    ]

    def run_shard(item: dict) -> dict:
        frame = ray.get(index_ref)
        rows = frame.iloc[int(item["start"]) : int(item["stop"])]
        name = shards.shard_name(int(item["shard"]))
        out = write_shard(
            rows,
            storage.join(vdir, name),
            item["relpath"] + name,
            row_group_mb=row_group_mb,
            max_megapixels=max_megapixels,
        )
        out["shard"] = int(item["shard"])
        return out

    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(run_shard, num_cpus=1, concurrency=min(num_cpus, len(plan)) if num_cpus else None)

    written: list[shards.ShardInfo] = []
    bad: list[tuple[str, str, str]] = []
    done_rows = 0
    for count, result in enumerate(ds.iter_rows(), start=1):
        bad.extend(tuple(b) for b in json.loads(result["bad"]))
        done_rows += int(result["total"])
        if result["path"]:
            written.append(
                shards.ShardInfo(
                    result["path"], int(result["rows"]), int(result["bytes"]), result["sha256"]
                )
            )
        elapsed = time.perf_counter() - started
        log.info(
            f"{dataset}: shard {count}/{len(plan)} done: {done_rows}/{len(index)} images, "
            f"{len(bad)} bad, {elapsed:.1f} s, {done_rows / max(elapsed, 1e-9):.0f} img/s"
        )
        if fail_after_shards is not None and count >= fail_after_shards:
            raise shards.IngestionInterrupted(
                f"injected failure after {count} shard(s) of {dataset} ({FAIL_AFTER_ENV} / "
                "fail_after_shards); no manifest was written"
            )

    _write_bad_report(report_uri, bad)
    fraction = len(bad) / len(index)
    if fraction > max_bad_fraction or not written:
        storage.delete_tree(vdir)  # our own unpublished version: nothing else references it
        raise IngestionError(
            f"{dataset}: {len(bad)} of {len(index)} images ({fraction:.1%}) could not be read or "
            f"decoded, more than max_bad_fraction={max_bad_fraction:g}; nothing was published "
            f"(the previous version, if any, is untouched). The bad images are listed in "
            f"{report_uri}"
        )
    written.sort(key=lambda s: s.path)
    manifest = shards.write_manifest(
        ddir,
        dataset=dataset,
        version=version,
        shards=written,
        source_fingerprint=fingerprint,
        extra={
            "bad_images": len(bad),
            "source_root": adapter.root,
            "shard_size_mb": shard_size_mb,
        },
    )
    removed = shards.remove_other_versions(ddir, keep=version)
    if removed:
        log.info(f"{dataset}: removed {len(removed)} older version(s)")
    if bad:
        log.info(f"{dataset}: {len(bad)} bad image(s) skipped, listed in {report_uri}")
    result = IngestResult(
        dataset,
        ddir,
        "ingested",
        manifest.row_count,
        len(manifest.shards),
        len(bad),
        report_uri if bad else None,
        time.perf_counter() - started,
        manifest,
    )
    log.info(result.summary())
    return result
