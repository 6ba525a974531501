"""Fixtures of the training tests: the session's Ray with CPUs enough for two Train workers and
a tiny KADID-10k ingested once for the whole package."""

from __future__ import annotations

import pytest

from dgqa_ray.data.ingest import ingest
from dgqa_ray.data.splits import split_by_reference
from tests.fixtures.datasets import build_kadid
from tests.fixtures.training import TRAIN_CPUS


@pytest.fixture(scope="package")
def ray_train(ray_local):
    """The session's local Ray, with at least ``TRAIN_CPUS`` logical CPUs for this package.

    Two 1-CPU Train workers on a 2-CPU cluster would leave Ray Data no CPU to decode with (the
    builder refuses that). The previous CPU count is restored afterwards.
    """
    import ray

    before = int(ray.cluster_resources().get("CPU", 0))
    if before < TRAIN_CPUS:
        ray.shutdown()
        ray.init(num_cpus=TRAIN_CPUS, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if before < TRAIN_CPUS:
        ray.shutdown()
        ray.init(num_cpus=before, include_dashboard=False, log_to_driver=False)


@pytest.fixture(scope="package")
def kadid_store(ray_train, tmp_path_factory):
    """(storage, split): a tiny KADID-10k ingested under ``storage`` and a 4/2 reference split."""
    root = tmp_path_factory.mktemp("train-data")
    built = build_kadid(root / "kadid", n_refs=6, types=(1, 2, 3), levels=(1, 2, 3, 4, 5))
    store = str(root / "store")
    ingest(built.open(), store)
    split = split_by_reference(built.expected["ref_id"], train_fraction=0.6, seed=0)
    return store, split
