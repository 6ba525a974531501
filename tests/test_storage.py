"""Storage URIs: the same calls on local disk and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import logging
import os
import pickle
import threading

import pytest

from dgqa_ray import storage


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def base_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    s3 = request.getfixturevalue("s3_server")
    return s3.unique_uri("storage")


def test_write_read_exists_list(base_uri):
    a = storage.join(base_uri, "ds", "a.bin")
    b = storage.join(base_uri, "ds/sub/", "/b.PNG")
    c = storage.join(base_uri, "ds", "sub", "c.txt")
    assert not storage.exists(a)
    storage.write_bytes_atomic(a, b"\x00\x01payload")
    storage.write_bytes_atomic(b, b"png-bytes")
    storage.write_text_atomic(c, "hello")

    assert storage.exists(a) and storage.is_file(a)
    assert storage.exists(storage.join(base_uri, "ds", "sub"))  # a folder / prefix
    assert storage.read_bytes(a) == b"\x00\x01payload"
    assert storage.read_text(c) == "hello"
    assert storage.file_size(b) == len(b"png-bytes")
    with storage.open_input(a) as f:
        f.seek(2)
        assert f.read() == b"payload"

    assert storage.list_files(storage.join(base_uri, "ds")) == sorted([a, b, c])
    # Suffixes compare case-insensitively: camera files come as .JPG as often as .jpg.
    assert storage.list_files(storage.join(base_uri, "ds"), suffixes=[".png"]) == [b]
    assert storage.list_files(storage.join(base_uri, "nothing-here")) == []

    storage.delete_tree(storage.join(base_uri, "ds", "sub"))
    assert storage.list_files(storage.join(base_uri, "ds")) == [a]
    storage.delete_file(a)
    assert not storage.exists(a)


def test_missing_file_error_names_the_uri(base_uri):
    missing = storage.join(base_uri, "no", "such.file")
    with pytest.raises(FileNotFoundError, match="no/such.file"):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError, match="no/such.file"):
        with storage.open_input(missing):
            pass


def test_atomic_write_replaces_whole_content(base_uri):
    uri = storage.join(base_uri, "manifest.json")
    storage.write_bytes_atomic(uri, b"old" * 1000)
    storage.write_bytes_atomic(uri, b"new")
    assert storage.read_bytes(uri) == b"new"
    # No temporary files left beside the target.
    assert storage.list_files(base_uri) == [uri]


def test_local_atomic_write_never_shows_partial_content(tmp_path, monkeypatch):
    uri = str(tmp_path / "m.json")
    old, new = b"A" * 2_000_000, b"B" * 2_000_000
    storage.write_bytes_atomic(uri, old)

    seen: set[bytes] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            data = storage.read_bytes(uri)
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(10):
        storage.write_bytes_atomic(uri, new)
        storage.write_bytes_atomic(uri, old)
    stop.set()
    t.join()
    assert seen <= {b"AA2000000", b"BB2000000"}

    # A write that fails before the rename leaves the previous content and no debris.
    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        storage.write_bytes_atomic(uri, b"partial")
    assert storage.read_bytes(uri) == old
    assert os.listdir(tmp_path) == ["m.json"]


def test_join_and_resolve():
    assert storage.join("s3://b", "x", "y.parquet") == "s3://b/x/y.parquet"
    assert storage.join("s3://b/p/", "/x/") == "s3://b/p/x"
    assert storage.join("/data", "a") == "/data/a"
    assert storage.parent("s3://b/p/x.json") == "s3://b/p"
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/b/k")
    fs, path = storage.resolve("file:///tmp/x")
    assert path == "/tmp/x"
    with pytest.raises(storage.StorageError, match="unsupported storage URI scheme 'gs'"):
        storage.resolve("gs://bucket/x")
    with pytest.raises(storage.StorageError, match="no bucket"):
        storage.resolve("s3:///key")


def test_endpoint_from_environment(monkeypatch):
    for name in storage.ENDPOINT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert storage.endpoint_url() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000")
    assert storage.endpoint_url() == "https://minio.example:9000"
    monkeypatch.setenv("DGQA_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    assert storage.endpoint_url() == "http://127.0.0.1:8333"  # ours wins over the standard one


@pytest.mark.slow
def test_credentials_never_in_logs_reprs_or_errors(s3_server, caplog, capfd):
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    caplog.set_level(logging.DEBUG)
    base = s3_server.unique_uri("secrets")
    uri = storage.join(base, "x.bin")
    storage.write_bytes_atomic(uri, b"x")
    storage.read_bytes(uri)
    with pytest.raises(FileNotFoundError) as missing:
        storage.read_bytes(storage.join(base, "absent"))
    fs, _ = storage.resolve(uri)
    texts = [
        caplog.text,
        repr(fs),
        str(fs),
        storage.describe_s3_settings(),
        str(missing.value),
        repr(s3_server.server),
        s3_server.server.log_tail(200),
    ]
    out, err = capfd.readouterr()
    texts += [out, err]
    for text in texts:
        assert secret not in text
        assert key_id not in text
    # The filesystem object carries no credentials: each Ray worker resolves its own chain.
    assert secret.encode() not in pickle.dumps(fs)
