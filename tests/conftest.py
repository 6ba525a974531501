"""Shared fixtures: tiny images made on the fly, a local Ray cluster, a real S3 server.

Fixture modules live in ``tests/fixtures/`` (one concept per file) and are registered here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest_plugins = [
    "tests.fixtures.leftovers",  # first: its session check runs after every other teardown
    "tests.fixtures.ray_cluster",
    "tests.fixtures.ray_cli",
    "tests.fixtures.s3_server",
    "tests.fixtures.datasets",
    "tests.fixtures.browser",
]


def natural_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A (h, w, 3) uint8 image with smooth regions, edges and texture, like a photo crop."""
    from skimage import data
    from skimage.transform import resize

    photo = data.astronaut()  # (512, 512, 3) uint8, ships with scikit-image
    rng = np.random.default_rng(seed)
    assert 2 * h <= 512 and 2 * w <= 512, "natural_image crops a 512x512 photo"
    top = int(rng.integers(0, 512 - 2 * h + 1))
    left = int(rng.integers(0, 512 - 2 * w + 1))
    crop = photo[top : top + 2 * h, left : left + 2 * w]
    out = resize(crop, (h, w), anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    return natural_image()


@pytest.fixture(autouse=True, scope="session")
def _quiet_env():
    # Keep Ray from probing the network for usage stats in tests.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    yield
