"""Starting or joining Ray, and how much of Ray's own logging reaches the console.

One helper starts Ray for every stage and job (``init_ray``): it joins the cluster that
``RAY_ADDRESS`` names (``ray job submit`` sets it) or an instance already running here, and
otherwise starts a local one with the CPUs the caller asks for.

**Quiet by default.** A run's console holds the project's own lines (one per stage, one per
epoch, progress bars); Ray's INFO logs go only to the session's log folder
(``/tmp/ray/session_latest/logs``: ``ray-data/`` for Ray Data, ``train/`` for Ray Train,
``worker-*.out`` for everything a worker printed). ``--verbose`` on any job (or
``DGQA_VERBOSE=1``) leaves Ray's logging as Ray sets it. What quiet mode changes:

- Ray Data's console handler shows warnings only (``ray_data_logging.yaml``, through
  ``RAY_DATA_LOGGING_CONFIG``; its file handler still writes everything), and its progress is
  logged to that file instead of drawn as bars on the driver (``DataContext.use_ray_tqdm``);
- Ray Train's own loggers show warnings only (``train_logging_config``), and the one logger
  Ray 2.60 names by a file path ("Reporting training result ...") is set to warnings in each
  worker (``quiet_train_worker``);
- ``RAY_TRAIN_ENABLE_PRINT_PATCH=0``: a worker's ``print`` reaches the console once, not twice
  (Ray Train's patch also logs it through the root logger);
- on a local instance only, ``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=0``: the watcher actor of
  spot-node preemption, meaningless on one machine, whose creation logs a core-worker error;
- ``TQDM_DISABLE=1``: tqdm bars that Ray Data draws on the driver ("Parquet dataset
  sampling") are off; the project's own bars pass ``disable=`` explicitly and still show;
- ``ray.init(logging_level=WARNING)`` on the driver, and ``MLFLOW_LOGGING_LEVEL=WARNING``
  (MLflow's database set-up lines).

Left as Ray prints it: the token-authentication notice (security), and one core-worker line
per process when Ray Data's map actors start ("constructor arguments in the object store and
max_restarts > 0": Ray Data puts its own fused transform there; a C++ log line that Python
logging cannot filter).

Call ``configure_console`` before anything imports Ray Data (the jobs do it right after
parsing their arguments): Ray Data reads its logging config when it is first imported.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

VERBOSE_ENV = "DGQA_VERBOSE"
RAY_DATA_LOGGING = Path(__file__).resolve().parent / "ray_data_logging.yaml"
LOG_FOLDER = "/tmp/ray/session_latest/logs"
"""Where a local Ray session keeps its logs (``ray.init(_temp_dir=...)`` aside)."""

QUIET_ENV = {
    "RAY_DATA_LOGGING_CONFIG": str(RAY_DATA_LOGGING),
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TQDM_DISABLE": "1",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}
LOCAL_QUIET_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def is_verbose() -> bool:
    """True when Ray's logs should reach the console as Ray sets them (``--verbose``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure_console(verbose: bool = False) -> None:
    """Quiet (default) or verbose console for this process and the Ray workers it starts.

    Environment variables a user has set already are kept. Child processes (a local Ray's
    workers, jobs started from here) inherit the choice.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.setdefault(VERBOSE_ENV, "0")
    if is_verbose():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if "mlflow" in sys.modules:  # imported already: MLFLOW_LOGGING_LEVEL was read
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    if "ray.data" in sys.modules:  # imported already: its driver handlers were set up
        _quiet_console_handlers(logging.getLogger("ray.data"))


def _quiet_console_handlers(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(max(handler.level, logging.WARNING))


def init_ray(num_cpus: int | None = None, **kwargs: Any):
    """Join the running cluster, or start a local Ray with ``num_cpus`` logical CPUs.

    Joins when ``RAY_ADDRESS`` is set (``ray job submit``, a user's cluster) or when
    ``ray.init`` finds an instance already running on this machine; ``num_cpus`` then does not
    apply (the cluster has its size). ``kwargs`` go to ``ray.init`` (``include_dashboard``,
    ``log_to_driver``, ...). Returns the ``ray`` module. Already initialised: nothing changes.
    """
    quiet = not is_verbose()
    if quiet:
        configure_console(False)
    import ray

    if ray.is_initialized():
        return ray
    if quiet:
        kwargs.setdefault("logging_level", logging.WARNING)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        if quiet:
            for key, value in LOCAL_QUIET_ENV.items():  # before the raylet starts: inherited
                os.environ.setdefault(key, value)
        try:
            ray.init(num_cpus=num_cpus, **kwargs)
        except ValueError as e:
            # A local instance is running already: join it (it has its own size).
            if "existing cluster" not in str(e):
                raise
            ray.init(**kwargs)
    if quiet:
        import ray.data

        ray.data.DataContext.get_current().use_ray_tqdm = False
        _quiet_console_handlers(logging.getLogger("ray.data"))
    return ray


def train_logging_config():
    """``RunConfig(logging_config=...)`` for Ray Train: warnings only when quiet, else None."""
    if is_verbose():
        return None
    import ray.train

    return ray.train.LoggingConfig(log_level="WARNING")


def quiet_train_worker(verbose: bool) -> None:
    """In a Ray Train worker: silence "Reporting training result ..." (Ray 2.60 names that
    logger by its file path, so ``train_logging_config`` misses it). ``verbose``: the driver's
    choice (a worker on a cluster does not inherit the driver's environment): no-op."""
    if verbose:
        return
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray version: nothing to mend
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def worker_line(text: str) -> None:
    """One line from a Ray Train worker to its stdout, which Ray forwards to the driver. Not
    ``print``: Ray Train patches it to go to both stdout and its logger, and every line would
    show twice."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def where_logs_are() -> str:
    """One line for the console: where Ray's logs went, and how to see them here instead."""
    if is_verbose():
        return ""
    return f"Ray's own logs: {LOG_FOLDER} (--verbose shows them here)"
