"""Injected worker crashes: how the fault tests (and a user trying a job's recovery) kill a Ray
Train worker at a known point, so that the run's resumption can be checked.

Real faults need nothing from here: ``FailureConfig(max_failures)`` makes Ray Train restart the
worker group, and the worker loop resumes from the latest checkpoint (``checkpoints.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dgqa_ray.ray_session import worker_line

FAIL_AT_EPOCH_ENV = "DGQA_TRAIN_FAIL_AT_EPOCH"

FAIL_MARKER_ENV = "DGQA_TRAIN_FAIL_MARKER"


@dataclass(frozen=True)
class InjectedFailure:
    """A worker crash for fault tests: rank ``rank`` calls ``os._exit(1)`` after its first
    training batch of epoch ``epoch`` (0-based), once per ``marker`` file.

    The marker is created just before the crash, so the retried or rerun worker group passes
    through. Before crashing, the worker waits until Ray Train's controller has taken the
    previous epoch's checkpoint, so the test knows which checkpoint the run resumes from. From
    a job: ``DGQA_TRAIN_FAIL_AT_EPOCH=2 DGQA_TRAIN_FAIL_MARKER=/tmp/crashed`` in the driver's
    environment.
    """

    epoch: int
    marker: str
    rank: int = 0

    @classmethod
    def from_env(cls) -> InjectedFailure | None:
        raw = os.environ.get(FAIL_AT_EPOCH_ENV, "").strip()
        if not raw:
            return None
        marker = os.environ.get(FAIL_MARKER_ENV, "").strip()
        if not marker:
            raise ValueError(
                f"{FAIL_AT_EPOCH_ENV} is set but {FAIL_MARKER_ENV} (a file path) is not"
            )
        try:
            epoch = int(raw)
        except ValueError as e:
            raise ValueError(
                f"{FAIL_AT_EPOCH_ENV}: expected an epoch index (0, 1, ...), got {raw!r}"
            ) from e
        return cls(epoch=epoch, marker=os.path.abspath(marker))


def wait_for_reports_taken(timeout_s: float = 30.0) -> None:
    """Block until Ray Train's controller has taken this worker's reported results.

    A report waits in a one-slot queue until the controller polls the worker (every 2 s by
    default); a worker that dies before that loses the report. Real crashes can lose the last
    epoch that way (the run then resumes one checkpoint earlier, which is still correct); the
    injected crash waits so that tests know where the run resumes. Falls back to sleeping past
    two poll intervals if Ray's internals moved.
    """
    try:
        from ray.train.v2._internal.execution.context import get_train_context

        queue = get_train_context().get_result_queue()
        deadline = time.monotonic() + timeout_s
        while queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the controller finish registering the checkpoint it just took
    except Exception:  # pragma: no cover - depends on Ray internals
        time.sleep(5.0)


def crash_after_first_batch(
    batches: Iterable[Any], failure: InjectedFailure, rank: int
) -> Iterator[Any]:
    """Yield the first batch, then crash this worker process (see ``InjectedFailure``)."""
    iterator = iter(batches)
    yield next(iterator)
    if rank == failure.rank and not os.path.exists(failure.marker):
        wait_for_reports_taken()
        os.makedirs(os.path.dirname(failure.marker) or ".", exist_ok=True)
        with open(failure.marker, "w") as f:
            f.write(f"worker rank {rank} crashed on purpose in epoch {failure.epoch}\n")
        worker_line(f"[injected failure] rank {rank} exits in epoch {failure.epoch}")
        os._exit(1)
    yield from iterator
