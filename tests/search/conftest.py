"""The search tests' shared setup: one tiny config for every end-to-end search test."""

from __future__ import annotations

import pytest

from dgqa_ray.config import save_config
from tests.search.helpers import tiny_search_config


@pytest.fixture(scope="package")
def search_setup(tmp_path_factory):
    """A tiny config saved as YAML, shared by the package's tests (test_gds.py's job runs
    first: files run in name order); its stages are made by the first job that runs."""
    tmp = tmp_path_factory.mktemp("search")
    cfg = tiny_search_config(tmp)
    path = save_config(cfg, str(tmp / "tiny.yaml"))
    return tmp, cfg, path
