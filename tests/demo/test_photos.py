"""The embedded default references: tiles of scikit-image's colour photos (no Ray, no network)."""

from __future__ import annotations

import numpy as np
import pytest

from dgqa_ray.demo.photos import (
    DEFAULT_TILE,
    ReferenceTile,
    content_id,
    embedded_photos,
    embedded_references,
    stretch,
)


def test_default_tiles_have_the_documented_count_size_and_names():
    tiles = embedded_references()
    assert len(tiles) == 17  # 4 each from four photos, 1 from chelsea (module docstring)
    assert all(t.image.shape == (*DEFAULT_TILE, 3) and t.image.dtype == np.uint8 for t in tiles)
    assert DEFAULT_TILE == (192, 256)
    names = [t.name for t in tiles]
    assert len(set(names)) == len(names)
    assert names[:6] == [
        "skimage_astronaut_t00",
        "skimage_chelsea_t00",
        "skimage_coffee_t00",
        "skimage_motorcycle_t00",
        "skimage_rocket_t00",
        "skimage_astronaut_t01",
    ]


def test_tiles_are_deterministic_and_independent_copies():
    first, second = embedded_references(), embedded_references()
    assert [t.name for t in first] == [t.name for t in second]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    first[0].image[:] = 0  # a caller writing into its tile must not change the next call
    assert embedded_references(max_tiles=1)[0].image.any()


def test_tiles_are_colour_and_not_flat():
    for tile in embedded_references():
        img = tile.image.astype(np.int16)
        # Greyscale photos were excluded: channels really differ somewhere in every tile.
        assert (
            np.abs(img[..., 0] - img[..., 1]).mean() > 2
            or np.abs(img[..., 1] - img[..., 2]).mean() > 2
        ), tile.name
        assert img.std() > 5, tile.name


def test_content_ids_group_tiles_by_photo():
    tiles = embedded_references()
    contents = {t.content for t in tiles}
    assert contents == set(embedded_photos())
    assert len(contents) == 5 and "skimage_ihc" not in contents  # a micrograph is no photo
    assert content_id("skimage_coffee_t03") == "skimage_coffee"
    assert content_id("deadleaves_0007") == "deadleaves_0007"  # procedural: its own content
    assert {t.content for t in embedded_references(max_tiles=5)} == contents
    with pytest.raises(ValueError, match="name"):
        content_id("I01.png")


def test_tile_is_a_name_image_pair():
    name, image = embedded_references(max_tiles=1)[0]
    assert isinstance(embedded_references(max_tiles=1)[0], ReferenceTile)
    assert name == "skimage_astronaut_t00" and image.shape == (192, 256, 3)


def test_names_mean_the_same_pixels_whatever_max_tiles():
    small = {t.name: t.image for t in embedded_references(max_tiles=8)}
    full = {t.name: t.image for t in embedded_references()}
    assert len(small) == 8
    for name, image in small.items():
        np.testing.assert_array_equal(image, full[name])


def test_custom_tile_size_tiles_the_photo_grid():
    tiles = embedded_references(tile=(64, 96))
    assert all(t.image.shape == (64, 96, 3) for t in tiles)
    coffee = embedded_photos()["skimage_coffee"]  # (400, 600, 3): 6 x 6 tiles, centred
    assert sum(t.content == "skimage_coffee" for t in tiles) == (400 // 64) * (600 // 96)
    top, left = (400 - 6 * 64) // 2, (600 - 6 * 96) // 2
    first = next(t for t in tiles if t.name == "skimage_coffee_t00")
    np.testing.assert_array_equal(first.image, stretch(coffee[top : top + 64, left : left + 96]))


def test_tiles_are_stretched_as_the_generator_stretches_its_input():
    from dgqa_ray import distortions

    for tile in embedded_references((96, 128), max_tiles=10):
        assert tile.image.min() == 0 and tile.image.max() == 255, tile.name
        # Gaussian blur level 1 (sigma 0.1) is an identity: the generator returns the pristine
        # tile unchanged, so a full-reference proxy measures the distortion, not the stretch.
        np.testing.assert_array_equal(distortions.apply(tile.image, 1, 1), tile.image)


def test_stretch_maps_the_range_to_0_255_and_keeps_flat_images():
    ramp = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)
    out = stretch(ramp)
    assert out.min() == 0 and out.max() == 255 and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 51, 102])
    flat = np.full((2, 2, 3), 7, np.uint8)
    np.testing.assert_array_equal(stretch(flat), flat)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": (4000, 4000)}, "fits in none"),
        ({"tile": (64,)}, "tile"),
        ({"tile": (4, 64)}, "tile"),
        ({"max_tiles": 0}, "max_tiles"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedded_references(**kwargs)
