"""Parquet shards of ``schema.SCHEMA`` and the manifest that makes them a dataset.

Layout under ``<storage>/<dataset>/`` (a local folder or an ``s3://`` prefix)::

    manifest.json                      the current complete version; written LAST
    versions/<version>/part-00000.parquet
    versions/<version>/part-00001.parquet ...
    _reports/bad_images.csv            images ingestion skipped (see ingest.py)

Why versions: an ingestion writes its shards into a fresh ``versions/<version>/`` folder that no
reader looks at, and only then replaces ``manifest.json`` (one atomic write) to point at it. A
run that dies part way leaves an unreferenced folder and the previous manifest untouched, so the
previous complete dataset stays readable; a later successful run deletes unreferenced versions.
Readers go through :func:`read_manifest`, which refuses a dataset without a manifest and checks
that every listed shard is present with its recorded size (one listing, no image reads).

Shard format: image bytes are stored as the original encoded file (already compressed, so the
``image`` column is written uncompressed and without min/max statistics); the other columns use
zstd. Row groups hold about ``row_group_mb`` (32 MB) of rows: the unit Ray Data reads and streams,
small enough that a worker never holds more than a few of them, large enough for efficient S3
range reads. Shards hold about ``shard_size_mb`` (256 MB): object stores and Ray Data are slow with
millions of small objects, and one read task per shard keeps scheduling overhead negligible.

One ingestion per dataset at a time: two concurrent runs would each delete the other's
unreferenced version folder on success.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dgqa_ray import storage

from .schema import SCHEMA, SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
VERSIONS_DIR = "versions"
REPORTS_DIR = "_reports"

DEFAULT_SHARD_SIZE_MB = 256.0
DEFAULT_ROW_GROUP_MB = 32.0
_MB = 1024 * 1024

# Small columns are compressed; the image column is already compressed (JPEG/PNG) so zstd would
# spend CPU for nothing, and min/max statistics on megabyte-sized binary values bloat the footer.
_COMPRESSION = {f.name: ("none" if f.name == "image" else "zstd") for f in SCHEMA}
_STATISTICS = [f.name for f in SCHEMA if f.name != "image"]
_DICTIONARY = ["dataset", "subset"]


class ManifestError(RuntimeError):
    """A dataset that must not be read: no manifest, or shards that do not match it."""


def dataset_uri(storage_uri: str, dataset: str) -> str:
    """``<storage>/<dataset>``: where one dataset's versions, manifest and reports live."""
    if not dataset or "/" in dataset or dataset.startswith((".", "_")):
        raise ValueError(
            f"dataset name must be a plain folder name (no '/', not starting with '.' or '_'), "
            f"got {dataset!r}"
        )
    return storage.join(storage.normalize(storage_uri), dataset)


def manifest_uri(dataset_dir: str) -> str:
    return storage.join(dataset_dir, MANIFEST_NAME)


def reports_uri(dataset_dir: str, name: str) -> str:
    return storage.join(dataset_dir, REPORTS_DIR, name)


def new_version_id() -> str:
    """Sortable and unique: UTC time to the second plus a random suffix."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:8]}"


def version_uri(dataset_dir: str, version: str) -> str:
    return storage.join(dataset_dir, VERSIONS_DIR, version)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the manifest records it; ``path`` is relative to the dataset folder."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The record that a dataset version is complete (``manifest.json``)."""

    schema_version: int
    dataset: str
    version: str
    row_count: int
    shards: list[ShardInfo]
    source_fingerprint: str
    created_at: str
    dataset_dir: str = field(default="", compare=False)  # where it was read from (not stored)
    extra: dict = field(default_factory=dict)  # e.g. bad image counts, adapter options

    def shard_uris(self) -> list[str]:
        return [storage.join(self.dataset_dir, s.path) for s in self.shards]

    def to_json(self) -> str:
        body = asdict(self)
        body.pop("dataset_dir")
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, dataset_dir: str, where: str) -> Manifest:
        try:
            body = json.loads(text)
            shards = [ShardInfo(**s) for s in body.pop("shards")]
            return cls(shards=shards, dataset_dir=dataset_dir, **body)
        except (ValueError, TypeError, KeyError) as e:
            raise ManifestError(f"manifest {where} is not a valid dgqa manifest: {e}") from e


class _HashingStream:
    """A write-only file object that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self.size += view.nbytes
        self._sink.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._sink.close()
            self.closed = True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class ShardFileWriter:
    """Streams tables of ``SCHEMA`` into one Parquet file, hashing it on the way out.

    Rows are buffered until about ``row_group_mb`` and then written as one row group, so memory
    stays near one row group whatever the shard size::

        with ShardFileWriter(uri) as w:
            w.write(table)          # any number of times
        info = w.info(relpath)      # rows, bytes, sha256
    """

    def __init__(self, uri: str, row_group_mb: float = DEFAULT_ROW_GROUP_MB) -> None:
        self.uri = uri
        self.row_group_bytes = max(1, int(row_group_mb * _MB))
        fs, path = storage.resolve(uri)
        if isinstance(fs, pafs.LocalFileSystem):
            fs.create_dir(storage.parent(uri), recursive=True)
        self._stream = _HashingStream(fs.open_output_stream(path))
        self._writer = pq.ParquetWriter(
            self._stream,
            SCHEMA,
            compression=_COMPRESSION,
            write_statistics=_STATISTICS,
            use_dictionary=_DICTIONARY,
        )
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.rows = 0
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """Bytes in the file so far plus rows still buffered (what a shard-size check wants)."""
        return self._stream.size + self._pending_bytes

    def write(self, table: pa.Table) -> None:
        """Append rows; ``table`` must have exactly ``SCHEMA`` (see :func:`conform`)."""
        if not table.schema.equals(SCHEMA):
            raise ValueError(
                f"shard rows must have schema.SCHEMA; got columns {table.column_names} "
                f"with types {[str(t) for t in table.schema.types]}"
            )
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        self.rows += table.num_rows
        if self._pending_bytes >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_bytes = [], 0
        # Split so each row group is about row_group_bytes (a few huge images may exceed it).
        per_row = max(1, table.nbytes // max(1, table.num_rows))
        rows_per_group = max(1, self.row_group_bytes // per_row)
        self._writer.write_table(table, row_group_size=rows_per_group)

    def close(self) -> None:
        if self._closed:
            return
        self._flush()
        self._writer.close()
        self._stream.close()
        self._closed = True

    def abort(self) -> None:
        """Close without caring about the result (the file is unreferenced and will be cleaned)."""
        try:
            self._writer.close()
            self._stream.close()
        except Exception:  # the writer may already be broken; the file is garbage anyway
            pass
        self._closed = True

    def info(self, relpath: str) -> ShardInfo:
        assert self._closed, "info() is known only after close()"
        return ShardInfo(relpath, self.rows, self._stream.size, self._stream.hexdigest())

    def __enter__(self) -> ShardFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def conform(table: pa.Table) -> pa.Table:
    """Cast a table with SCHEMA's column names (any order, compatible types) to SCHEMA exactly."""
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"rows lack schema columns {missing}; got {table.column_names}")
    return table.select(SCHEMA.names).cast(SCHEMA)


def write_manifest(
    dataset_dir: str,
    *,
    dataset: str,
    version: str,
    shards: list[ShardInfo],
    source_fingerprint: str,
    extra: dict | None = None,
) -> Manifest:
    """Publish a version: write ``manifest.json`` (atomically), the step that makes it readable."""
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        dataset=dataset,
        version=version,
        row_count=sum(s.rows for s in shards),
        shards=list(shards),
        source_fingerprint=source_fingerprint,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        dataset_dir=dataset_dir,
        extra=dict(extra or {}),
    )
    storage.write_text_atomic(manifest_uri(dataset_dir), manifest.to_json())
    return manifest


def remove_other_versions(dataset_dir: str, keep: str) -> list[str]:
    """Delete every version folder except ``keep`` (after ``keep``'s manifest is written)."""
    fs, path = storage.resolve(storage.join(dataset_dir, VERSIONS_DIR))
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    removed = []
    for info in infos:
        name = info.base_name
        if name != keep:
            uri = storage.to_uri(fs, info.path)
            storage.delete_tree(uri)
            removed.append(uri)
    return removed


def read_manifest(uri: str, *, verify_checksums: bool = False) -> Manifest:
    """The manifest of a complete dataset; refuses anything a reader must not trust.

    ``uri`` is the dataset folder (``<storage>/<dataset>``) or its ``manifest.json``. Checks that
    the manifest exists, has this code's schema version, and that every listed shard exists with
    its recorded size (one listing per version folder). ``verify_checksums=True`` also reads every
    shard and compares SHA-256 (slow: reads the whole dataset).
    """
    uri = storage.normalize(uri)
    dataset_dir = storage.parent(uri) if uri.endswith("/" + MANIFEST_NAME) else uri
    where = manifest_uri(dataset_dir)
    try:
        text = storage.read_text(where)
    except FileNotFoundError:
        raise ManifestError(
            f"dataset at {dataset_dir} has no manifest: it was never completed; rerun the ingestion"
        ) from None
    manifest = Manifest.from_json(text, dataset_dir, where)
    if manifest.schema_version != SCHEMA_VERSION:
        raise ManifestError(
            f"dataset at {dataset_dir} has schema version {manifest.schema_version}, this code "
            f"reads version {SCHEMA_VERSION}; rerun the ingestion with --force"
        )
    if not manifest.shards:
        raise ManifestError(f"manifest {where} lists no shards; rerun the ingestion")

    # One listing per version folder gives every shard's size (no request per shard).
    fs, _ = storage.resolve(dataset_dir)
    sizes: dict[str, int] = {}
    for folder in sorted({storage.parent(u) for u in manifest.shard_uris()}):
        _, folder_path = storage.resolve(folder)
        selector = pafs.FileSelector(folder_path, recursive=False, allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                sizes[storage.to_uri(fs, info.path)] = int(info.size)
    for shard, shard_uri in zip(manifest.shards, manifest.shard_uris(), strict=True):
        actual = sizes.get(shard_uri)
        if actual is None:
            raise ManifestError(
                f"dataset at {dataset_dir}: shard {shard.path} listed in the manifest is "
                "missing; the dataset was damaged after ingestion: rerun the ingestion with --force"
            )
        if actual != shard.bytes:
            raise ManifestError(
                f"dataset at {dataset_dir}: shard {shard.path} has {actual} bytes, the manifest "
                f"says {shard.bytes}; rerun the ingestion with --force"
            )
        if verify_checksums:
            digest = hashlib.sha256(storage.read_bytes(shard_uri)).hexdigest()
            if digest != shard.sha256:
                raise ManifestError(
                    f"dataset at {dataset_dir}: shard {shard.path} checksum {digest[:12]}... "
                    f"differs from the manifest's {shard.sha256[:12]}...; rerun with --force"
                )
    return manifest


def write_dataset(
    storage_uri: str,
    dataset: str,
    tables: Iterable[pa.Table],
    *,
    source_fingerprint: str,
    shard_size_mb: float = DEFAULT_SHARD_SIZE_MB,
    row_group_mb: float = DEFAULT_ROW_GROUP_MB,
    extra: dict | None = None,
    fail_after_shards: int | None = None,
) -> Manifest:
    """Write rows (tables of SCHEMA, streamed) as a new version of a dataset and publish it.

    A sequential writer for producers that already run in one process (synthesis, tests);
    parallel ingestion (``ingest.py``) writes shards from Ray tasks and calls
    :func:`write_manifest` itself. ``fail_after_shards`` raises after that many shards are
    complete, before the manifest: the injected crash the tests use.
    """
    if shard_size_mb <= 0:
        raise ValueError(f"shard_size_mb must be > 0, got {shard_size_mb}")
    ddir = dataset_uri(storage_uri, dataset)
    version = new_version_id()
    vdir = version_uri(ddir, version)
    shards: list[ShardInfo] = []
    writer: ShardFileWriter | None = None
    target = shard_size_mb * _MB

    def finish() -> None:
        nonlocal writer
        assert writer is not None
        writer.close()
        relpath = f"{VERSIONS_DIR}/{version}/{shard_name(len(shards))}"
        shards.append(writer.info(relpath))
        writer = None
        if fail_after_shards is not None and len(shards) >= fail_after_shards:
            raise IngestionInterrupted(
                f"injected failure after {len(shards)} shard(s) of {dataset} (fail_after_shards)"
            )

    try:
        for table in tables:
            table = conform(table)
            start = 0
            while start < table.num_rows:
                if writer is None:
                    writer = ShardFileWriter(
                        storage.join(vdir, shard_name(len(shards))), row_group_mb
                    )
                # Fill the current shard up to the target, then roll over.
                per_row = max(1, table.nbytes // max(1, table.num_rows))
                room = max(1, int((target - writer.bytes_written) // per_row))
                piece = table.slice(start, room)
                writer.write(piece)
                start += piece.num_rows
                if writer.bytes_written >= target:
                    finish()
        if writer is not None and writer.rows > 0:
            finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if not shards:
        raise ValueError(f"no rows to write for dataset {dataset!r}")
    manifest = write_manifest(
        ddir,
        dataset=dataset,
        version=version,
        shards=shards,
        source_fingerprint=source_fingerprint,
        extra=extra,
    )
    remove_other_versions(ddir, keep=version)
    return manifest


class IngestionInterrupted(RuntimeError):
    """Raised by the injected failure hook (``fail_after_shards``) in tests."""
