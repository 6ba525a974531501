"""One way to reach files, whether they live on local disk or in an S3-compatible object store.

Everything the data layer stores or reads (raw datasets, Parquet shards, manifests, reports) is
named by a *URI*: a local path (``/data/kadid``, ``file:///data/kadid``) or ``s3://bucket/prefix``.
This module turns such a URI into a ``pyarrow.fs.FileSystem`` plus a path on it, which is what
both pyarrow and Ray Data (``read_parquet(..., filesystem=fs)``) consume, so the code path against
a SeaweedFS server in the tests is the one used against AWS S3.

S3 settings come from the environment, never from arguments, so that no secret ever passes
through a config file, a command line or a log line:

- endpoint: ``DGQA_S3_ENDPOINT_URL``, else the standard ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL``; unset means AWS itself. The URL's scheme (``http``/``https``) is used.
- region: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; unset with AWS itself means the bucket's region
  is looked up once per bucket; unset with an endpoint override means ``us-east-1``.
- credentials: the standard AWS chain (environment, shared profile, instance or pod role),
  resolved by the AWS SDK inside pyarrow on whichever process reads, so that refreshing
  credentials (roles) keep refreshing on every Ray worker. They are never passed explicitly,
  stored on our objects, printed or logged.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from urllib.parse import urlparse

import pyarrow.fs as pafs

S3_SCHEME = "s3://"
FILE_SCHEME = "file://"

ENDPOINT_ENV_VARS = ("DGQA_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_ENV_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")

_fs_cache: dict[tuple[str | None, str | None, str], pafs.S3FileSystem] = {}
_region_cache: dict[str, str] = {}
_lock = threading.Lock()


class StorageError(OSError):
    """A storage URI that cannot be used (bad form, or an object store that refuses)."""


def is_s3(uri: str) -> bool:
    """True for ``s3://bucket/key`` URIs, False for local paths."""
    return str(uri).startswith(S3_SCHEME)


def endpoint_url() -> str | None:
    """The S3 endpoint override from the environment (None means AWS itself)."""
    for name in ENDPOINT_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def describe_s3_settings() -> str:
    """A one-line, secret-free summary of where S3 URIs go (for logs and error messages)."""
    endpoint = endpoint_url() or "AWS (default endpoint)"
    region = _region_from_env() or "auto"
    return f"S3 endpoint={endpoint} region={region} credentials=standard AWS chain"


def _region_from_env() -> str | None:
    for name in REGION_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = uri[len(S3_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"S3 URI {uri!r} has no bucket; expected s3://bucket/prefix")
    return bucket, key.strip("/")


def _s3_filesystem(bucket: str) -> pafs.S3FileSystem:
    endpoint = endpoint_url()
    region = _region_from_env()
    if region is None:
        if endpoint is None:
            # AWS itself: a client in the wrong region gets redirects or errors, so ask once.
            region = _region_cache.get(bucket)
            if region is None:
                try:
                    region = pafs.resolve_s3_region(bucket)
                except OSError as e:
                    raise StorageError(
                        f"couldn't find the region of bucket {bucket!r}; set AWS_REGION "
                        f"({describe_s3_settings()})"
                    ) from e
                _region_cache[bucket] = region
        else:
            region = "us-east-1"  # what S3-compatible stores (SeaweedFS, MinIO) accept
    kwargs: dict = {
        "region": region,
        # Object stores drop connections under load; retry like the AWS CLI does.
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=5),
        "connect_timeout": 10.0,
        "request_timeout": 60.0,
    }
    if endpoint is not None:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StorageError(
                f"S3 endpoint {endpoint!r} is not a URL like http://host:port or https://host"
            )
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
        # S3-compatible stores address buckets by path, not by virtual host name.
        kwargs["force_virtual_addressing"] = False
    # The key includes the access key id's presence only: the secret never enters our objects.
    cache_key = (endpoint, region, "env-creds" if os.environ.get("AWS_ACCESS_KEY_ID") else "chain")
    with _lock:
        fs = _fs_cache.get(cache_key)
        if fs is None:
            fs = pafs.S3FileSystem(**kwargs)
            _fs_cache[cache_key] = fs
    return fs


def clear_cache() -> None:
    """Forget cached S3 filesystems (after the endpoint or credentials in the env changed)."""
    with _lock:
        _fs_cache.clear()
        _region_cache.clear()


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Turn a URI into (filesystem, path on it), the pair pyarrow and Ray Data take.

    ``s3://bucket/a/b`` -> (S3FileSystem, ``bucket/a/b``); ``/x/y`` or ``file:///x/y`` ->
    (LocalFileSystem, ``/x/y``, made absolute so it means the same thing on every worker).
    """
    uri = str(uri)
    if not uri:
        raise StorageError("empty storage URI; expected a local path or s3://bucket/prefix")
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        path = f"{bucket}/{key}" if key else bucket
        return _s3_filesystem(bucket), path
    if "://" in uri and not uri.startswith(FILE_SCHEME):
        scheme = uri.split("://", 1)[0]
        raise StorageError(
            f"unsupported storage URI scheme {scheme!r} in {uri!r}; use a local path, "
            "file:///path or s3://bucket/prefix"
        )
    if uri.startswith(FILE_SCHEME):
        uri = uri[len(FILE_SCHEME) :]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """The inverse of :func:`resolve`: a filesystem path back to a full URI."""
    if isinstance(fs, pafs.S3FileSystem):
        return S3_SCHEME + path.lstrip("/")
    return path


def normalize(uri: str) -> str:
    """One spelling per location: absolute local paths, no ``file://``, no trailing ``/``.

    Compare URIs only after normalising (``data/x`` and ``/home/me/data/x/`` are the same folder).
    """
    uri = str(uri)
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        return S3_SCHEME + bucket + (f"/{key}" if key else "")
    _, path = resolve(uri)
    return path


def join(base: str, *parts: str) -> str:
    """Join URI parts with ``/`` (never the OS separator: the same code runs on S3)."""
    out = str(base)
    for part in parts:
        part = str(part).strip("/")
        if not part:
            continue
        out = out.rstrip("/") + "/" + part if out not in ("", "/") else out + part
    return out


def parent(uri: str) -> str:
    """The URI of the folder holding ``uri``."""
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        head = posixpath.dirname(key)
        return S3_SCHEME + bucket + (f"/{head}" if head else "")
    return os.path.dirname(os.path.abspath(uri))


def basename(uri: str) -> str:
    return posixpath.basename(str(uri).rstrip("/"))


def exists(uri: str) -> bool:
    """True when a file or folder (prefix) exists at ``uri``."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    return info.type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def file_size(uri: str) -> int:
    """Size in bytes; FileNotFoundError naming the URI when absent."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"no file at {uri}")
    return int(info.size)


def read_bytes(uri: str) -> bytes:
    """The whole content of a file; FileNotFoundError naming the URI when absent."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no file at {uri}") from e
    except OSError as e:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no file at {uri}") from e
        raise StorageError(f"couldn't read {uri}: {e}") from e


def read_text(uri: str, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """A seekable binary file for reading (S3 reads ranges lazily, e.g. for Parquet footers)."""
    fs, path = resolve(uri)
    try:
        f = fs.open_input_file(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no file at {uri}") from e
    except OSError as e:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no file at {uri}") from e
        raise
    with f:
        yield f


def list_files(prefix_uri: str, suffixes: Iterable[str] | None = None) -> list[str]:
    """All files under a folder/prefix, recursively, as full URIs, sorted.

    ``suffixes`` (e.g. ``[".png", ".jpg"]``) keeps only names ending with one of them, compared
    case-insensitively because camera files come as ``.JPG`` as often as ``.jpg``. A prefix that
    does not exist gives an empty list.
    """
    fs, path = resolve(prefix_uri)
    selector = pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)
    infos = fs.get_file_info(selector)
    wanted = tuple(s.lower() for s in suffixes) if suffixes is not None else None
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        if wanted is not None and not info.path.lower().endswith(wanted):
            continue
        out.append(to_uri(fs, info.path))
    return sorted(out)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write a file so that readers see either the old content or all of the new one.

    Local: write a hidden temporary file in the same folder, then ``os.replace`` (atomic on one
    filesystem). S3: a single PUT (or a completed multipart upload) is atomic by the S3 contract:
    the object is invisible until it is complete.
    """
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    try:
        with fs.open_output_stream(path) as f:
            f.write(data)
    except OSError as e:
        raise StorageError(f"couldn't write {uri} ({describe_s3_settings()}): {e}") from e


def write_text_atomic(uri: str, text: str, encoding: str = "utf-8") -> None:
    write_bytes_atomic(uri, text.encode(encoding))


def make_dirs(uri: str) -> None:
    """Create a local folder (no-op on S3, where folders are only key prefixes)."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path, recursive=True)


def delete_file(uri: str, missing_ok: bool = True) -> None:
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        if not missing_ok:
            raise
    except OSError:
        if fs.get_file_info(path).type != pafs.FileType.NotFound or not missing_ok:
            raise


def delete_tree(uri: str) -> None:
    """Remove a folder/prefix and everything under it (nothing happens if it is absent)."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return
    if info.type == pafs.FileType.File:
        fs.delete_file(path)
        return
    fs.delete_dir(path)
