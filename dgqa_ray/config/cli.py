"""A job's command line: ``--config``, ``--set``, ``--base-dir`` and ``--verbose``, turned into
a resolved config (``config_from_args``) whose relative paths are made absolute.

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)                 # --config demo|paper|FILE, --set, ...
    cfg = config_from_args(parser.parse_args())
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from dgqa_ray.user_input import redact as redact_uri

from .checks import ConfigError
from .loading import list_presets, load_config
from .pipeline_config import PipelineConfig
from .sections import TrackingConfig

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""Environment variable that, for the jobs, overrides the config's ``tracking.tracking_uri``."""

RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray in the environment of a job started with ``ray job submit``."""


def running_as_ray_job() -> bool:
    """True inside a job started with ``ray job submit``, whose working directory is Ray's
    temporary copy of the submitted one (removed when Ray cleans its session)."""
    return bool(os.environ.get(RAY_JOB_ENV))


def default_base_dir() -> Path | None:
    """Where relative paths resolve when no ``--base-dir`` is given: the working directory
    (None) for a job run directly; the home directory under ``ray job submit``, so that a
    submitted run's results outlive Ray's temporary copy of the working directory and a second
    submit finds them."""
    return Path.home() if running_as_ray_job() else None


def _absolute(path: str, base: Path) -> str:
    if "://" in path or os.path.isabs(os.path.expanduser(path)):
        return os.path.expanduser(path)
    return str(base / path)


def resolve_relative_paths(
    cfg: PipelineConfig, base: str | os.PathLike[str] | None
) -> PipelineConfig:
    """``cfg`` with every relative local path (``storage``, ``output_dir``, the SQLite file of
    ``tracking.tracking_uri``, the data roots, ``model.pretrained``) made absolute against
    ``base``; None: unchanged."""
    if base is None:
        return cfg
    root = Path(base).expanduser().resolve()
    data = cfg.data
    roots = {
        f"{role}_root": _absolute(getattr(data, f"{role}_root"), root)
        for role in ("classifier", "source", "target")
        if getattr(data, f"{role}_root")
    }
    tracking = cfg.tracking
    uri = tracking.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + _absolute(uri.removeprefix("sqlite:///"), root)
    pretrained = cfg.model.pretrained
    return dataclasses.replace(
        cfg,
        storage=_absolute(cfg.storage, root),
        output_dir=_absolute(cfg.output_dir, root),
        data=dataclasses.replace(data, **roots),
        model=dataclasses.replace(
            cfg.model, pretrained=_absolute(pretrained, root) if pretrained else None
        ),
        tracking=dataclasses.replace(tracking, tracking_uri=uri),
    )


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "demo") -> None:
    """Add ``--config``, ``--set``, ``--base-dir`` and ``--verbose`` to a job's argument parser."""
    parser.add_argument(
        "--config",
        default=default,
        help=f"preset name ({', '.join(list_presets())}) or YAML path (default: {default})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        metavar="DIR",
        help="resolve relative paths of the config (storage, output_dir, the SQLite MLflow "
        "store, data roots) against DIR (default: the working directory; under ray job submit, "
        'the home directory). E.g. ray job submit --working-dir . -- python ... --base-dir "$PWD"',
    )
    add_verbose_argument(parser)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``--verbose``: Ray's own logs on the console too (by default they go to its log folder)."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own logs (Ray Data plans and progress, Ray Train's worker-group and "
        "checkpoint lines) on the console; by default they go to /tmp/ray/session_latest/logs",
    )


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The config named by ``--config`` with the ``--set`` overrides applied.

    The MLflow store of a job comes, in this order, from ``--set tracking.tracking_uri=...``,
    the ``MLFLOW_TRACKING_URI`` environment variable, then the YAML file or preset. So a
    cluster whose nodes export ``MLFLOW_TRACKING_URI`` sends every job to the team's server
    without editing presets, and the resolved config (saved with the run, logged as MLflow
    params) names the store actually used. Its credentials stay in the environment
    (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``): a URI carrying a password is refused.

    Also sets the console's verbosity from ``--verbose`` (``ray_session.configure_console``).
    """
    from dgqa_ray.ray_session import configure_console

    configure_console(bool(getattr(args, "verbose", False)))
    overrides = list(args.overrides)
    env_uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    set_on_command_line = any(
        item.partition("=")[0].strip() == "tracking.tracking_uri" for item in overrides
    )
    if env_uri and not set_on_command_line:
        try:
            TrackingConfig(tracking_uri=env_uri)
        except ConfigError as e:
            raise ConfigError(f"{TRACKING_URI_ENV} (environment): {e}") from None
        overrides.insert(0, f"tracking.tracking_uri={env_uri}")
    cfg = load_config(args.config, overrides)
    base = getattr(args, "base_dir", None)
    if base is not None and ("://" in str(base) or not str(base).strip()):
        raise ConfigError(f"--base-dir: expected a local folder, got {redact_uri(str(base))!r}")
    return resolve_relative_paths(cfg, base if base is not None else default_base_dir())


def with_search_overrides(cfg: PipelineConfig, max_concurrent: int | None = None) -> PipelineConfig:
    """``cfg`` with a job's ``--max-concurrent`` (when given) applied to ``search``."""
    if max_concurrent is None:
        return cfg
    search = dataclasses.replace(cfg.search, max_concurrent=max_concurrent)
    return dataclasses.replace(cfg, search=search)
