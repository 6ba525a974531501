"""Ingestion end to end: every dataset format to local disk and to S3, read back through Ray Data.

Also: an interrupted ingestion is refused by readers and completed by a rerun, corrupt images
are counted/listed/skipped (and fail the run above the threshold), reruns are idempotent, and
the job's command line.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dgqa_ray import storage
from dgqa_ray.data import ingest, pipelines, shards
from dgqa_ray.data.schema import INDEX_COLUMNS
from tests.conftest import natural_image
from tests.fixtures.datasets import BUILDERS

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_s3(s3_server, ray_local):
    """S3 first, then Ray: the Ray workers then inherit the S3 settings from the start."""
    return s3_server


def _read_back(storage_uri: str, dataset: str) -> pd.DataFrame:
    ds = pipelines.read_dataset(storage_uri, dataset)
    frame = pd.DataFrame(ds.take_all())
    return frame.sort_values("image_id").reset_index(drop=True)


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_dataset_round_trips(name, where, tmp_path, request):
    if where == "s3":
        s3 = request.getfixturevalue("ray_s3")
        local = BUILDERS[name](tmp_path / name)
        built = local.upload(s3.unique_uri(f"raw-{name}"))
        store = s3.unique_uri("lake")
    else:
        request.getfixturevalue("ray_local")
        local = built = BUILDERS[name](tmp_path / name)
        store = str(tmp_path / "lake")

    result = ingest.ingest(built.open(), store)
    expected = built.expected.sort_values("image_id").reset_index(drop=True)
    assert result.status == "ingested" and result.bad_count == 0
    assert result.row_count == len(expected)

    rows = _read_back(store, result.dataset)
    assert rows["image_id"].tolist() == expected["image_id"].tolist()
    assert (rows["dataset"] == result.dataset).all()
    assert rows["ref_id"].tolist() == expected["ref_id"].tolist()
    np.testing.assert_allclose(rows["score"].astype(float), expected["score"].astype(float))
    np.testing.assert_allclose(rows["mos"].astype(float), expected["mos"].astype(float))
    for column in ("dist_type", "dist_level"):
        got = pd.array(rows[column], dtype="Int16")
        want = pd.array(expected[column], dtype="Int16")
        assert got.isna().tolist() == want.isna().tolist()
        assert got.fillna(-1).tolist() == want.fillna(-1).tolist()
    for _, row in rows.iterrows():
        pixels = local.pixels(row["image_id"])
        decoded = _decode(row["image"])
        np.testing.assert_array_equal(decoded, pixels)
        assert (row["height"], row["width"]) == pixels.shape[:2]


# -- an in-test adapter, to control exactly what is on disk -------------------------------------


class FolderAdapter:
    """The adapter protocol over a folder of PNGs named <ref>_<k>.png (bad ones allowed)."""

    name = "toy"

    def __init__(self, root: str):
        self.root = root

    def index(self) -> pd.DataFrame:
        paths = storage.list_files(self.root, suffixes=[".png"])
        ids = [storage.basename(p)[:-4] for p in paths]
        frame = pd.DataFrame(
            {
                "image_id": ids,
                "dataset": self.name,
                "ref_id": [i.split("_")[0] for i in ids],
                "dist_type": pd.array([k % 3 for k in range(len(ids))], dtype="Int16"),
                "dist_level": pd.array([None] * len(ids), dtype="Int16"),
                "subset": pd.array([None] * len(ids), dtype="string"),
                "mos": np.arange(len(ids), dtype=float),
                "score": np.linspace(0, 10, len(ids)),
                "path": paths,
            }
        )
        return frame[INDEX_COLUMNS]


def _toy_folder(root, n: int, bad: int = 0, h: int = 64, w: int = 96) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(natural_image(h, w, seed=k)).save(root / f"r{k // 3:02d}_{k % 3}.png")
    for k in range(bad):
        (root / f"zz{k:02d}_0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated garbage")
    return str(root)


def test_interrupted_ingestion_is_refused_then_completed_by_rerun(tmp_path, ray_local):
    adapter = FolderAdapter(_toy_folder(tmp_path / "raw", 24))
    store = str(tmp_path / "lake")
    # ~15 kB PNGs in shards of ~40 kB: several shards, the crash comes after the first.
    with pytest.raises(shards.IngestionInterrupted, match="injected failure"):
        ingest.ingest(adapter, store, shard_size_mb=0.04, fail_after_shards=1)
    with pytest.raises(shards.ManifestError, match="has no manifest: it was never completed"):
        pipelines.read_dataset(store, "toy")

    result = ingest.ingest(adapter, store, shard_size_mb=0.04)
    assert result.status == "ingested" and result.shard_count >= 3
    assert len(_read_back(store, "toy")) == 24
    # Only the completed version's files remain.
    parquet = storage.list_files(result.dataset_dir, suffixes=[".parquet"])
    assert len(parquet) == result.shard_count
    assert all(result.manifest.version in p for p in parquet)


def test_interrupted_rerun_keeps_the_previous_dataset_readable(tmp_path, ray_local, monkeypatch):
    raw = tmp_path / "raw"
    adapter = FolderAdapter(_toy_folder(raw, 12))
    store = str(tmp_path / "lake")
    first = ingest.ingest(adapter, store, shard_size_mb=0.04)
    _toy_folder(raw, 24)  # the source grows: a new fingerprint
    monkeypatch.setenv(ingest.FAIL_AFTER_ENV, "2")  # the job-level hook
    with pytest.raises(shards.IngestionInterrupted, match=ingest.FAIL_AFTER_ENV):
        ingest.ingest(adapter, store, shard_size_mb=0.04)
    assert shards.read_manifest(first.dataset_dir).version == first.manifest.version
    assert len(_read_back(store, "toy")) == 12
    monkeypatch.delenv(ingest.FAIL_AFTER_ENV)
    second = ingest.ingest(adapter, store, shard_size_mb=0.04)
    assert second.status == "ingested" and second.row_count == 24


def test_corrupt_images_are_counted_listed_and_skipped(tmp_path, ray_local, capsys):
    adapter = FolderAdapter(_toy_folder(tmp_path / "raw", 30, bad=1))
    store = str(tmp_path / "lake")
    result = ingest.ingest(adapter, store, max_bad_fraction=0.05)
    assert result.row_count == 30 and result.bad_count == 1
    report = storage.read_text(result.bad_report)
    assert result.bad_report.endswith("toy/_reports/bad_images.csv")
    lines = report.strip().splitlines()
    assert lines[0] == "image_id,path,reason"
    assert lines[1].startswith("zz00_0,") and "decode failed" in lines[1]
    assert "zz00_0" not in set(_read_back(store, "toy")["image_id"])
    assert "1 bad image(s) skipped" in capsys.readouterr().out


def test_too_many_corrupt_images_fail_with_the_report(tmp_path, ray_local):
    raw = tmp_path / "raw"
    adapter = FolderAdapter(_toy_folder(raw, 9))
    store = str(tmp_path / "lake")
    good = ingest.ingest(adapter, store)
    _toy_folder(raw, 9, bad=2)  # 2 of 11 bad: 18% > 1% by default
    with pytest.raises(ingest.IngestionError) as err:
        ingest.ingest(adapter, store)
    message = str(err.value)
    report = storage.join(good.dataset_dir, "_reports", "bad_images.csv")
    assert "2 of 11 images" in message and report in message
    assert "zz01_0" in storage.read_text(report)
    # Nothing published; the previous version stays, and no half-version is left behind.
    assert shards.read_manifest(good.dataset_dir).version == good.manifest.version
    parquet = storage.list_files(good.dataset_dir, suffixes=[".parquet"])
    assert all(good.manifest.version in p for p in parquet)


def test_rerun_is_idempotent_and_force_rebuilds(tmp_path, ray_local):
    adapter = FolderAdapter(_toy_folder(tmp_path / "raw", 6))
    store = str(tmp_path / "lake")
    first = ingest.ingest(adapter, store)
    again = ingest.ingest(adapter, store)
    assert again.status == "already ingested"
    assert again.manifest.version == first.manifest.version
    forced = ingest.ingest(adapter, store, force=True)
    assert forced.status == "ingested" and forced.manifest.version != first.manifest.version
    assert len(storage.list_files(first.dataset_dir, suffixes=[".parquet"])) == 1


def test_fingerprint_ignores_row_order_but_not_labels():
    frame = FolderAdapter.__new__(FolderAdapter)
    frame.root = "/nowhere"
    index = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "dataset": "toy",
            "ref_id": ["r", "r"],
            "dist_type": pd.array([1, None], dtype="Int16"),
            "dist_level": pd.array([1, None], dtype="Int16"),
            "subset": pd.array([None, "x"], dtype="string"),
            "mos": [1.0, 2.0],
            "score": [0.0, 10.0],
            "path": ["/a.png", "/b.png"],
        }
    )
    reordered = index.iloc[::-1].reset_index(drop=True)
    assert ingest.source_fingerprint(index) == ingest.source_fingerprint(reordered)
    relabelled = index.assign(mos=[1.0, 2.5])
    assert ingest.source_fingerprint(index) != ingest.source_fingerprint(relabelled)


def test_job_ingests_kadid_and_reports(tmp_path, ray_local, capsys):
    sys.path.insert(0, "jobs")
    try:
        import ingest as ingest_job
    finally:
        sys.path.remove("jobs")
    built = BUILDERS["kadid10k"](tmp_path / "kadid")
    store = str(tmp_path / "lake")
    argv = ["--dataset", "kadid10k", "--root", built.root, "--storage", store, "--num-cpus", "1"]
    assert ingest_job.main(argv) == 0
    out = capsys.readouterr().out
    assert f"dataset: {store}/kadid10k" in out and "ingested" in out
    assert ingest_job.main(argv) == 0
    assert "already ingested" in capsys.readouterr().out
    # Bad input: the message names the missing file.
    assert ingest_job.main(["--dataset", "kadid10k", "--root", str(tmp_path / "nope"),
                            "--storage", store]) == 2  # fmt: skip
    assert "dmos.csv" in capsys.readouterr().err


def test_job_help_lists_defaults():
    out = subprocess.run(
        [sys.executable, "jobs/ingest.py", "--help"], capture_output=True, text=True, check=True
    ).stdout
    out = " ".join(out.split())  # argparse wraps lines wherever the terminal width says
    for text in ["--shard-size-mb", "(default: 256)", "--max-bad-fraction", "(default: 0.01)",
                 "ray job submit", "kadid10k"]:  # fmt: skip
        assert text in out
