"""MLflow tracking that can never stop a training run, and never records a secret.

    with Tracker(cfg) as tracker:                       # parent run, named cfg.run_name
        tracker.log_params(cfg)                         # the resolved config, flattened
        with tracker.nested("classifier") as run:       # child run
            run.log_metrics({"loss": 0.7, "accuracy": 0.4}, step=1)
            run.log_artifact("dgqa_output/similarity.png")
    print(mlflow_ui_command(cfg))    # mlflow ui --backend-store-uri sqlite:////abs/mlflow.db

The store is ``cfg.tracking.tracking_uri``: by default a SQLite file (``sqlite:///...``, the file
store is deprecated), whose folder is created, and whose relative path is made absolute once so
that a later ``chdir`` or the printed UI command still point at the same file. New experiments
keep their artifacts in ``mlartifacts/`` next to the SQLite file. Any other MLflow URI
(``http://host:5000``, ``postgresql://host/db``) is used as it is; credentials for it come from
the environment (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``), never from the config.

Outages. Every call to MLflow is guarded: the first failure (bad URI, server down, disk full or
read-only, database locked) logs *one* warning naming what failed, and from then on the tracker
and all its runs are no-ops, so training goes on untracked. Only input errors that are bugs in
the caller (a metric that is not a number) raise. Against a server that does not answer, MLflow
would retry 7 times with exponential backoff and a 120 s timeout (minutes per call); unless the
environment already says otherwise, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT=10`` are set before
the first call, so an outage costs seconds.

Secrets. ``log_params`` and ``set_tags`` redact (value ``<redacted>``) any key that names a
secret (password, secret, token, credential, API/access/private key) and any value holding the
value of such an environment variable (``AWS_SECRET_ACCESS_KEY``, ``MLFLOW_TRACKING_PASSWORD``,
``RAY_AUTH_TOKEN``, ...), an AWS access key id, or a password inside a URI (the password is
dropped, the rest kept). The config itself refuses credentials in URIs (``config/checks.py``).

MLflow is imported only when a tracker starts; nothing here touches Ray.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dgqa_ray.config import PipelineConfig, TrackingConfig

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``)."""
ARTIFACTS_DIR = "mlartifacts"
"""Artifacts of new experiments go here, next to the SQLite file."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""Marks the experiment as model training, so MLflow 3's UI opens it on its runs (not on the
GenAI traces overview). Set on experiments this project creates, and on existing ones that
carry no kind yet."""
MODEL_ARTIFACT = "model"
"""Name of the logged MLflow model in a run: ``runs:/<run_id>/model``."""
DIGEST_LENGTH = 32
"""MLflow keeps at most 36 characters of a dataset digest: the first 32 hex digits (128 bits)
of the manifest's SHA-256 source fingerprint are used; the whole one is in the profile."""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""Set (unless already set) before the first MLflow call: a down server costs seconds."""

# Names of secrets, matched on the lower-cased key with '-', '.', ' ' read as '_'.
_SECRET_NAME = re.compile(
    r"secret|passw|passphrase|token|credential|api_?key|access_?key|private_?key|session_?key"
)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_FLOAT_MAX = 1.7976931348623157e308
_MIN_SECRET_LENGTH = 6  # shorter env values ("1", "true") would redact everything


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def looks_secret(name: str) -> bool:
    """True when a param/tag/env name says it holds a secret (``aws_secret_access_key``,
    ``MLFLOW_TRACKING_PASSWORD``, ``RAY_AUTH_TOKEN``, ``api-key``)."""
    return bool(_SECRET_NAME.search(re.sub(r"[-.\s]", "_", str(name).lower())))


def _env_secrets() -> list[str]:
    values = [
        v for k, v in os.environ.items() if looks_secret(k) and len(v.strip()) >= _MIN_SECRET_LENGTH
    ]
    return sorted(set(values), key=len, reverse=True)


def _strip_uri_password(text: str) -> str:
    def fix(match: re.Match) -> str:
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            return REDACTED
        if parts.password is None:
            return match.group(0)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", fix, text)


def redact(name: str, value: Any, env_secrets: list[str] | None = None) -> str:
    """``value`` as the string MLflow will store, or ``<redacted>`` if it may hold a secret."""
    if looks_secret(name):
        return REDACTED
    text = value if isinstance(value, str) else _to_text(value)
    secrets = _env_secrets() if env_secrets is None else env_secrets
    if any(secret in text for secret in secrets) or _AWS_KEY_ID.search(text):
        return REDACTED
    return _strip_uri_password(text)


def _to_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_to_text(v) for v in value) + "]"
    return str(value)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------------------------
# Store location
# --------------------------------------------------------------------------------------------


def _sqlite_path(uri: str) -> tuple[str, str] | None:
    """(path, query) of a ``sqlite:///`` URI's database file; None for in-memory or not SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///") :]
    path, _, query = rest.partition("?")
    if path in ("", ":memory:"):
        return None
    return path, query


def resolve_tracking_uri(uri: str, create: bool = False) -> str:
    """The URI with a relative SQLite path made absolute (``create``: its folder created)."""
    found = _sqlite_path(uri)
    if found is None:
        return uri
    path, query = found
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    if create:
        absolute.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{absolute}" + (f"?{query}" if query else "")


def mlflow_ui_command(cfg: PipelineConfig | TrackingConfig) -> str:
    """The shell command that opens the MLflow UI on the config's store.

    SQLite and other database stores: ``mlflow ui --backend-store-uri <uri>`` (absolute path,
    so it works from any folder). An ``http(s)://`` tracking server already serves the UI: the
    command opens it in a browser.
    """
    tracking = cfg.tracking if isinstance(cfg, PipelineConfig) else cfg
    uri = resolve_tracking_uri(tracking.tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"python -m webbrowser {shlex.quote(uri)}"
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"


UI_ADDRESS = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` serves by default."""


def experiment_url(cfg: PipelineConfig | TrackingConfig, experiment_id: str) -> str:
    """The address of the experiment's runs view in the MLflow UI: the tracking server's own
    (``http(s)://`` stores) or ``mlflow ui``'s default.

    MLflow 3's UI opens every experiment in its GenAI view (traces overview) unless told
    otherwise: it keeps a global "GenAI / Model training" switch, remembered by the browser,
    that wins over the experiment's ``mlflow.experimentKind`` tag. ``workflowType=
    machine_learning`` in the address sets the switch, so the link opens on the runs (and the
    browser keeps the setting)."""
    tracking = cfg.tracking if isinstance(cfg, PipelineConfig) else cfg
    uri = resolve_tracking_uri(tracking.tracking_uri)
    base = redact("uri", uri).rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


class TrackedRun:
    """One MLflow run (the parent or a nested one); every method is a no-op once the tracker
    has failed or when tracking is off."""

    def __init__(self, tracker: Tracker, run_id: str | None, name: str) -> None:
        self._tracker = tracker
        self.run_id = run_id
        self.name = name
        self._params: dict[str, str] = {}

    @property
    def active(self) -> bool:
        """True while calls on this run reach MLflow."""
        return self.run_id is not None and self._tracker.active

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``MlflowClient.<method>(*args, **kwargs)``, guarded; None when inactive."""
        if not self.active:
            return None
        fn = getattr(self._tracker._client, method)
        return self._tracker._guarded(f"{what} ({self.name})", fn, *args, **kwargs)

    def log_params(self, params: Mapping[str, Any] | PipelineConfig) -> None:
        """Params, flattened (``train.lr``); a config is logged as ``to_flat_dict()``. Secrets
        are redacted. A key logged again with the same value is skipped; with another value it
        is skipped with a warning (MLflow params cannot change)."""
        if not self.active:
            return
        from mlflow.entities import Param

        flat = params.to_flat_dict() if isinstance(params, PipelineConfig) else flatten(params)
        secrets = _env_secrets()
        batch = []
        for key, value in flat.items():
            text = redact(key, value, secrets)
            if len(text) > MAX_PARAM_LENGTH:
                text = text[: MAX_PARAM_LENGTH - 3] + "..."
            if key in self._params:
                if self._params[key] != text:
                    log.warning(
                        "MLflow param %r of run %r is already %r; not changed to %r",
                        key,
                        self.name,
                        self._params[key],
                        text,
                    )
                continue
            batch.append(Param(str(key), text))
        # MLflow takes at most 100 params per batch.
        for start in range(0, len(batch), 100):
            chunk = batch[start : start + 100]
            self._call("log params", "log_batch", self.run_id, params=chunk)
            if not self.active:
                return
            self._params.update({p.key: p.value for p in chunk})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numeric metrics at ``step`` (None: 0); None values are skipped, NaN is kept. A value
        that is not a number raises ValueError even when tracking is off (a bug to see early)."""
        values = {}
        for key, value in metrics.items():
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"metrics[{key!r}]: expected a number, got {value!r} ({type(value).__name__})"
                ) from e
            values[str(key)] = number
        if not values or not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        # MLflow stores +-inf as the largest float; say so explicitly instead of relying on it.
        batch = [
            Metric(k, math.copysign(_FLOAT_MAX, v) if math.isinf(v) else v, now, int(step or 0))
            for k, v in values.items()
        ]
        self._call("log metrics", "log_batch", self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags (secrets redacted like params)."""
        if not tags or not self.active:
            return
        from mlflow.entities import RunTag

        secrets = _env_secrets()
        batch = [RunTag(str(k), redact(k, v, secrets)[:MAX_PARAM_LENGTH]) for k, v in tags.items()]
        self._call("set tags", "log_batch", self.run_id, tags=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """A local file or folder as an artifact. A path that does not exist (or an ``s3://``
        URI: log it as a param or with ``log_text``) is skipped with a warning."""
        if not self.active:
            return
        local = os.fspath(path)
        if "://" in local or not os.path.exists(local):
            log.warning("MLflow artifact %r skipped: not a local file or folder", local)
            return
        upload = "log_artifacts" if os.path.isdir(local) else "log_artifact"
        self._call("log artifact", upload, self.run_id, local, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """A small text artifact (e.g. checkpoint locations)."""
        self._call("log text", "log_text", self.run_id, text, artifact_file)

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        """A JSON/YAML artifact (by the file's suffix), e.g. the selection."""
        self._call("log dict", "log_dict", self.run_id, dict(values), artifact_file)

    def log_dataset(
        self, *, name: str, fingerprint: str, uri: str, rows: int, context: str, version: str = ""
    ) -> None:
        """An ingested dataset as a run input (``mlflow.log_input``; the runs list's Dataset
        column): digest = the manifest's fingerprint (``DIGEST_LENGTH`` hex digits), source =
        where it is stored, context ``training``/``validation``/``evaluation``."""
        if not self.active:
            return
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=str(name),
            digest=str(fingerprint)[:DIGEST_LENGTH],
            source_type="s3" if str(uri).startswith("s3://") else "local",
            source=json.dumps({"uri": redact("uri", uri)}),
            profile=json.dumps(
                {"num_rows": int(rows), "source_fingerprint": fingerprint, "version": version}
            ),
        )
        tag = InputTag(key="mlflow.data.context", value=str(context))
        self._call("log input", "log_inputs", self.run_id, [DatasetInput(dataset, [tag])])

    def log_model(
        self,
        module: Any,
        *,
        example: Any,
        metadata: Mapping[str, Any],
        registered_name: str | None = None,
    ) -> str | None:
        """A torch module as this run's MLflow model (``mlflow.pytorch.log_model``, name
        ``model``): the signature is inferred from ``example`` (a numpy input batch) and the
        module's output on it, ``example`` is kept as the input example, ``metadata`` (task,
        backbone, crop size, preprocessing) goes into the MLmodel file, and the requirements
        are the torch/torchvision in use (no inference subprocess). With ``registered_name``
        the model also becomes a new version of that registered model.

        Returns the ``runs:/<run_id>/model`` URI, or None when inactive or the logging failed
        (a warning, and tracking is off from then on, as for every other MLflow failure).
        """
        if not self.active:
            return None
        done = self._tracker._guarded(
            f"log model ({self.name})",
            _log_pytorch_model,
            self._tracker.tracking_uri,
            self.run_id,
            module,
            example,
            dict(metadata),
            registered_name,
        )
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}" if done else None

    def _end(self, status: str) -> None:
        self._call("end run", "set_terminated", self.run_id, status)


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``mlflow.pytorch.log_model``, ``load_model`` of a ``runs:/`` URI)
    pointed at ``uri`` for the block only. ``mlflow.set_tracking_uri`` also writes
    ``MLFLOW_TRACKING_URI`` into this process's environment, which every process started
    later (a job, a Ray worker) would inherit as its store: the previous value is put back."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets the variable


def _log_pytorch_model(
    tracking_uri: str,
    run_id: str,
    module: Any,
    example: Any,
    metadata: dict[str, Any],
    registered_name: str | None,
) -> bool:
    """``mlflow.pytorch.log_model`` into the existing run ``run_id`` (the fluent API is the
    only one that logs models: the run is reopened for the call and stays the caller's to
    end)."""
    import mlflow
    import mlflow.pytorch
    import numpy as np
    import torch
    import torchvision
    from mlflow.models import infer_signature

    module = module.eval()
    with torch.no_grad():
        output = module(torch.from_numpy(np.ascontiguousarray(example))).float().numpy()
    signature = infer_signature(example, output)
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    requirements.append(f"torchvision=={torchvision.__version__.split('+')[0]}")
    with fluent_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(
            module,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            metadata=metadata,
            pip_requirements=requirements,
            registered_model_name=registered_name,
        )
    return True


def _end_abandoned_runs(client, experiment_id: str, run_name: str) -> list[str]:
    """Mark KILLED the parent runs of this name still RUNNING, and their RUNNING nested runs.

    A process killed with SIGKILL (or by the OOM killer) never ends its runs; without this
    they would show RUNNING for ever. A new run of the same name means the old one is gone
    (two pipelines of one name at once would share checkpoints anyway)."""
    stale = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.runName` = '{run_name}' and attributes.status = 'RUNNING' "
            "and tags.`dgqa.stage` = 'pipeline'"
        ),
    )
    ended = []
    for run in stale:
        children = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{run.info.run_id}' and attributes.status = 'RUNNING'"
            ),
        )
        for child in children:
            client.set_terminated(child.info.run_id, status="KILLED")
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(run.info.run_id)
    if ended:
        log.warning(
            "MLflow: %d earlier run(s) named %r were still RUNNING (their process was killed); "
            "marked KILLED",
            len(ended),
            run_name,
        )
    return ended


class Tracker:
    """One parent MLflow run per pipeline run, with nested runs for its stages.

    Use as a context manager; the parent run ends FINISHED, or FAILED (KILLED on Ctrl-C) when
    the block raises. The exception is never swallowed. With ``cfg.tracking.enabled`` false,
    or after the first MLflow failure, every method does nothing.
    """

    def __init__(
        self, cfg: PipelineConfig, *, run_name: str | None = None, resume_key: str | None = None
    ) -> None:
        if not isinstance(cfg, PipelineConfig):
            raise ValueError(f"cfg: expected a PipelineConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.tracking = cfg.tracking
        self.enabled = bool(cfg.tracking.enabled)
        self.run_name = run_name or cfg.run_name
        self.resume_key = resume_key
        """With a key, the latest parent run tagged with it is reopened instead of a new one
        (a resumed sweep keeps one parent run)."""
        self.tracking_uri = resolve_tracking_uri(cfg.tracking.tracking_uri)
        self.failure: str | None = None
        """What failed, once something did (the tracker is a no-op from then on)."""
        self._client = None
        self._experiment_id: str | None = None
        self.parent = TrackedRun(self, None, self.run_name)

    # -- state and the guard --------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True while calls reach MLflow: enabled, started and nothing has failed yet."""
        return self.enabled and self.failure is None and self._client is not None

    @property
    def run_id(self) -> str | None:
        """The parent run's id (None when tracking is off or failed to start)."""
        return self.parent.run_id

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - an MLflow outage must not stop training
            self._fail(what, e)
            return None

    def _fail(self, what: str, error: BaseException) -> None:
        message = redact("error", f"{type(error).__name__}: {error}")
        first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        self.failure = f"couldn't {what}: {first_line}"
        log.warning(
            "MLflow tracking at %s is off for the rest of this run (training goes on): %s",
            redact("uri", self.tracking_uri),
            self.failure,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Tracker:
        """Start the parent run (``__enter__`` does this)."""
        if not self.enabled or self._client is not None or self.failure is not None:
            return self
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            self._start()
        except Exception as e:  # noqa: BLE001 - see _guarded
            self._client = None
            self._fail("start the MLflow run", e)
        return self

    def _start(self) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        uri = resolve_tracking_uri(self.tracking.tracking_uri, create=True)
        self.tracking_uri = uri
        client = MlflowClient(tracking_uri=uri)
        name = self.tracking.experiment_name
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            found = _sqlite_path(uri)
            if found is not None:
                location = (Path(found[0]).parent / ARTIFACTS_DIR).resolve().as_uri()
            try:
                experiment_id = client.create_experiment(
                    name,
                    artifact_location=location,
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                )
            except MlflowException:
                # Another process created it between the lookup and now.
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        run = None
        if self.resume_key is not None:
            found = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`dgqa.resume_key` = '{self.resume_key}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if found:
                run = found[0]
                client.update_run(run.info.run_id, status="RUNNING")
                log.info("MLflow: reopened run %s (%s)", run.info.run_id, self.run_name)
        if run is None:
            _end_abandoned_runs(client, experiment_id, self.run_name)
            tags = {MLFLOW_RUN_NAME: self.run_name, "dgqa.stage": "pipeline"}
            if self.resume_key is not None:
                tags["dgqa.resume_key"] = self.resume_key
            run = client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self._experiment_id = experiment_id
        self._client = client
        self.parent.run_id = run.info.run_id

    def end(self, status: str = "FINISHED") -> None:
        """End the parent run (``__exit__`` does this)."""
        self.parent._end(status)

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.end(status)
        return False

    @contextlib.contextmanager
    def nested(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[TrackedRun]:
        """A child run of the parent (``mlflow.parentRunId``), ended when the block ends."""
        from_id = None
        if self.active and self.parent.run_id is not None:
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

            secrets = _env_secrets()
            all_tags = {MLFLOW_PARENT_RUN_ID: self.parent.run_id, MLFLOW_RUN_NAME: name}
            all_tags["dgqa.stage"] = name
            all_tags.update({str(k): redact(k, v, secrets) for k, v in (tags or {}).items()})
            run = self._guarded(
                f"start nested run {name!r}",
                self._client.create_run,
                self._experiment_id,
                run_name=name,
                tags=all_tags,
            )
            from_id = run.info.run_id if run is not None else None
        child = TrackedRun(self, from_id, name)
        try:
            yield child
        except KeyboardInterrupt:
            child._end("KILLED")
            raise
        except BaseException:
            child._end("FAILED")
            raise
        else:
            child._end("FINISHED")

    def child_tags(self, tag: str) -> list[str]:
        """The values of ``tag`` on the parent's nested runs (e.g. the trials a reopened
        sweep has logged already); empty when tracking is off or fails."""
        if not self.active or self.parent.run_id is None:
            return []
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        runs = self._guarded(
            "list nested runs",
            self._client.search_runs,
            [self._experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent.run_id}'",
            max_results=10000,
        )
        return [r.data.tags[tag] for r in runs or [] if tag in r.data.tags]

    # -- the parent run's logging -----------------------------------------------------------

    def log_params(self, params: Mapping[str, Any] | PipelineConfig) -> None:
        self.parent.log_params(params)

    def log_config(self, cfg: PipelineConfig | None = None) -> None:
        """The resolved config (``to_flat_dict``) as the parent's params."""
        self.parent.log_params(cfg or self.cfg)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.parent.log_metrics(metrics, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.parent.set_tags(tags)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.parent.log_artifact(path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.parent.log_text(text, artifact_file)

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        self.parent.log_dict(values, artifact_file)

    def ui_command(self) -> str:
        """``mlflow_ui_command`` for this tracker's store."""
        return mlflow_ui_command(self.cfg)

    @property
    def experiment_id(self) -> str | None:
        """The experiment's id once started (None when tracking is off or failed)."""
        return self._experiment_id if self.active else None

    def experiment_url(self) -> str | None:
        """``experiment_url`` for this tracker's experiment (None when inactive)."""
        return None if self.experiment_id is None else experiment_url(self.cfg, self.experiment_id)


__all__ = [
    "EXPERIMENT_KIND",
    "MODEL_ARTIFACT",
    "REDACTED",
    "TrackedRun",
    "Tracker",
    "experiment_url",
    "flatten",
    "fluent_tracking_uri",
    "looks_secret",
    "mlflow_ui_command",
    "redact",
    "resolve_tracking_uri",
]
