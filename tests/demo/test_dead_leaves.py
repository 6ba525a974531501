"""Procedural dead-leaves references (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from dgqa_ray.demo.dead_leaves import (
    dead_leaves_image,
    dead_leaves_references,
    is_dead_leaves_name,
    palette_from_photos,
)
from dgqa_ray.demo.photos import content_id, embedded_photos


@pytest.fixture(scope="module")
def palette():
    return palette_from_photos([embedded_photos()["skimage_rocket"]], seed=0)


def test_palette_holds_colours_of_the_photos(palette):
    photo = embedded_photos()["skimage_rocket"].reshape(-1, 3)
    assert palette.shape == (4096, 3)
    colours = {tuple(int(v) for v in c) for c in photo[::7]}
    # Drawn from the photo's own pixels (a sample of them, so most are found in a subsample).
    assert np.mean([tuple(int(v) for v in c) in colours for c in palette[:200]]) > 0.05
    with pytest.raises(ValueError, match="photos"):
        palette_from_photos([])


def test_an_image_is_stretched_colour_and_scale_rich(palette):
    image = dead_leaves_image(96, 128, np.random.default_rng(0), palette)
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255
    # Many leaves of many sizes: many distinct colours, and edges everywhere.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 300
    edges = np.abs(np.diff(image.astype(np.int16), axis=1)).max(axis=2) > 30
    assert 0.02 < edges.mean() < 0.5


def test_references_are_named_seeded_and_their_own_content(palette):
    first = dead_leaves_references(3, (48, 64), seed=1, palette=palette)
    again = dead_leaves_references(3, (48, 64), seed=1, palette=palette)
    other = dead_leaves_references(1, (48, 64), seed=2, palette=palette)
    later = dead_leaves_references(1, (48, 64), seed=1, palette=palette, start=2)
    assert [r.name for r in first] == ["deadleaves_0000", "deadleaves_0001", "deadleaves_0002"]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(first[0].image, other[0].image)
    np.testing.assert_array_equal(later[0].image, first[2].image)  # a name means its pixels
    assert all(is_dead_leaves_name(r.name) and content_id(r.name) == r.name for r in first)
    assert not is_dead_leaves_name("skimage_coffee_t00")


def test_bad_arguments_name_the_argument(palette):
    with pytest.raises(ValueError, match="size"):
        dead_leaves_image(1, 8, np.random.default_rng(0), palette)
    with pytest.raises(ValueError, match="radius"):
        dead_leaves_image(8, 8, np.random.default_rng(0), palette, min_radius=5, max_radius=2)
    with pytest.raises(ValueError, match="count"):
        dead_leaves_references(-1, (8, 8), 0, palette)
