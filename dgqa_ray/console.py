"""The project's one output channel: the ``dgqa_ray`` logger, printed concisely to stdout.

Every module logs through ``logging.getLogger(__name__)``; importing ``dgqa_ray`` installs one
handler on the ``dgqa_ray`` logger (as Ray does for ``ray``) that prints INFO lines as they are
(each already names its stage: ``[pipeline] ...``, ``[classifier demo-classifier] ...``) and
warnings and errors with their level (``warning: ...``). It writes to whatever ``sys.stdout``
is at that moment, so a job's redirected output or a test's capture sees every line.

- Quieter: ``logging.getLogger("dgqa_ray").setLevel(logging.WARNING)``.
- Elsewhere: ``logging.getLogger("dgqa_ray").handlers`` holds the one handler to replace.
- The logger does not propagate to the root logger, so a root handler (a user's
  ``logging.basicConfig``, Ray's ``LoggingConfig``) does not print every line twice.

Two lines bypass it on purpose: a Ray Train worker's epoch lines (``ray_session.worker_line``,
since Ray forwards a worker's stdout to the driver), and what the jobs and benchmarks print as their result (``print``: a
result, not a log line).
"""

from __future__ import annotations

import logging
import sys

PROJECT_LOGGER = "dgqa_ray"


class _CurrentStdout(logging.StreamHandler):
    """A ``StreamHandler`` on the current ``sys.stdout`` (looked up per line, not once)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # noqa: D401 - logging's attribute
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


class _Concise(logging.Formatter):
    """The message alone for INFO and below; ``warning: ...`` / ``error: ...`` above."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def install() -> logging.Logger:
    """The ``dgqa_ray`` logger with the console handler, at INFO unless a level was set
    already. Idempotent (importing ``dgqa_ray`` calls it)."""
    logger = logging.getLogger(PROJECT_LOGGER)
    if not any(isinstance(h, _CurrentStdout) for h in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(_Concise("%(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
