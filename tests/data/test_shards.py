"""Parquet shards + manifest: sizes, format, and readers refusing incomplete or damaged data."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dgqa_ray import storage
from dgqa_ray.data import shards
from dgqa_ray.data.schema import SCHEMA, SCHEMA_VERSION


def _png(seed: int, h: int = 48, w: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()  # noise: ~9 kB each, does not compress


def _table(start: int, n: int) -> pa.Table:
    ids = [f"img{i:04d}" for i in range(start, start + n)]
    return pa.table(
        {
            "image_id": ids,
            "dataset": ["toy"] * n,
            "ref_id": [f"ref{i // 4}" for i in range(start, start + n)],
            "dist_type": pa.array([i % 26 for i in range(start, start + n)], pa.int16()),
            "dist_level": pa.array([None] * n, pa.int16()),
            "subset": pa.array([None] * n, pa.string()),
            "mos": [float(i) for i in range(start, start + n)],
            "score": [float(i) / 10 for i in range(start, start + n)],
            "width": pa.array([64] * n, pa.int32()),
            "height": pa.array([48] * n, pa.int32()),
            "image": [_png(i) for i in range(start, start + n)],
        }
    ).cast(SCHEMA)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_server").unique_uri("shards")


def test_shards_split_at_target_size_and_manifest_describes_them(store):
    tables = [_table(0, 30), _table(30, 30)]  # 60 images of ~9 kB
    manifest = shards.write_dataset(
        store, "toy", tables, source_fingerprint="abc", shard_size_mb=0.1, row_group_mb=0.03
    )
    assert manifest.row_count == 60
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.dataset == "toy" and manifest.source_fingerprint == "abc"
    assert len(manifest.shards) >= 5  # ~540 kB in shards of ~100 kB
    assert sum(s.rows for s in manifest.shards) == 60

    again = shards.read_manifest(storage.join(store, "toy"), verify_checksums=True)
    assert again == manifest
    assert json.loads(storage.read_text(storage.join(store, "toy", "manifest.json")))["shards"]

    rows = []
    for shard, uri in zip(manifest.shards, manifest.shard_uris(), strict=True):
        assert storage.file_size(uri) == shard.bytes
        assert shard.bytes < 0.1 * 1024 * 1024 * 1.3  # target plus at most one row group
        with storage.open_input(uri) as f:
            pf = pq.ParquetFile(f)
            assert pf.schema_arrow.equals(SCHEMA)
            # Row groups of ~30 kB: a reader never needs the whole shard in memory.
            assert pf.metadata.num_row_groups >= 2
            assert pf.metadata.row_group(0).column(10).compression == "UNCOMPRESSED"
            rows.append(pf.read())
    table = pa.concat_tables(rows)
    expected = pa.concat_tables(tables)
    assert table.column("image_id").to_pylist() == expected.column("image_id").to_pylist()
    assert table.column("image").to_pylist() == expected.column("image").to_pylist()


def test_reader_refuses_a_dataset_without_manifest(store):
    with pytest.raises(shards.IngestionInterrupted):
        shards.write_dataset(
            store, "toy", [_table(0, 40)], source_fingerprint="x", shard_size_mb=0.05,
            fail_after_shards=2,
        )  # fmt: skip
    assert len(storage.list_files(storage.join(store, "toy"), suffixes=[".parquet"])) == 2
    ddir = storage.join(store, "toy")
    with pytest.raises(shards.ManifestError) as err:
        shards.read_manifest(ddir)
    message = str(err.value)
    assert f"dataset at {storage.normalize(ddir)} has no manifest" in message
    assert "it was never completed; rerun the ingestion" in message


def test_failed_rerun_keeps_previous_version_and_success_cleans_up(store):
    first = shards.write_dataset(store, "toy", [_table(0, 10)], source_fingerprint="v1")
    ddir = storage.join(store, "toy")
    with pytest.raises(shards.IngestionInterrupted):
        shards.write_dataset(
            store, "toy", [_table(0, 40)], source_fingerprint="v2", shard_size_mb=0.05,
            fail_after_shards=1,
        )  # fmt: skip
    # The interrupted run wrote a shard of its own, but the readable dataset is still v1.
    current = shards.read_manifest(ddir, verify_checksums=True)
    assert current.version == first.version and current.row_count == 10
    versions = {uri.split("/versions/")[1].split("/")[0] for uri in storage.list_files(ddir)
                if "/versions/" in uri}  # fmt: skip
    assert len(versions) == 2

    third = shards.write_dataset(store, "toy", [_table(0, 12)], source_fingerprint="v3")
    files = [uri for uri in storage.list_files(ddir) if uri.endswith(".parquet")]
    assert files and all(f"/versions/{third.version}/" in uri for uri in files)
    assert shards.read_manifest(ddir).row_count == 12


def test_missing_or_resized_shard_is_refused(tmp_path):
    store = str(tmp_path)
    manifest = shards.write_dataset(
        store, "toy", [_table(0, 30)], source_fingerprint="f", shard_size_mb=0.1
    )
    victim = manifest.shard_uris()[1]
    data = storage.read_bytes(victim)

    storage.write_bytes_atomic(victim, data + b"junk")
    with pytest.raises(shards.ManifestError, match=r"part-00001.parquet has \d+ bytes"):
        shards.read_manifest(os.path.join(store, "toy"))

    flipped = bytearray(data)
    flipped[100] ^= 0xFF  # same size, different content: only the checksum sees it
    storage.write_bytes_atomic(victim, bytes(flipped))
    shards.read_manifest(os.path.join(store, "toy"))
    with pytest.raises(shards.ManifestError, match="part-00001.parquet checksum"):
        shards.read_manifest(os.path.join(store, "toy"), verify_checksums=True)

    os.remove(victim)
    with pytest.raises(shards.ManifestError, match="part-00001.parquet listed in the manifest"):
        shards.read_manifest(os.path.join(store, "toy", "manifest.json"))


def test_manifest_of_another_schema_version_is_refused(tmp_path):
    shards.write_dataset(str(tmp_path), "toy", [_table(0, 3)], source_fingerprint="f")
    path = tmp_path / "toy" / "manifest.json"
    body = json.loads(path.read_text())
    body["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(body))
    with pytest.raises(shards.ManifestError, match="schema version"):
        shards.read_manifest(str(tmp_path / "toy"))
    path.write_text("{not json")
    with pytest.raises(shards.ManifestError, match="not a valid dgqa manifest"):
        shards.read_manifest(str(tmp_path / "toy"))


def test_writer_rejects_rows_of_another_schema(tmp_path):
    bad = _table(0, 2).drop_columns(["width"])
    with pytest.raises(ValueError, match="lack schema columns \\['width'\\]"):
        shards.conform(bad)
    with shards.ShardFileWriter(str(tmp_path / "x.parquet")) as writer:
        with pytest.raises(ValueError, match="schema.SCHEMA"):
            writer.write(bad)
    # conform() fixes column order and compatible types.
    shuffled = _table(0, 2).select(list(reversed(SCHEMA.names)))
    assert shards.conform(shuffled).schema.equals(SCHEMA)


def test_dataset_names_are_plain_folder_names():
    for bad in ["", "a/b", "_reports", ".hidden"]:
        with pytest.raises(ValueError, match="plain folder name"):
            shards.dataset_uri("/x", bad)
    assert shards.dataset_uri("s3://b/p/", "kadid10k") == "s3://b/p/kadid10k"
