"""The embedded default: reference tiles cut from colour photos that ship inside scikit-image.

No dataset can be downloaded where the demo runs, so the default pipeline synthesizes its own
from these photos. All of them are files inside the ``skimage/data`` folder of the wheel and load
without network access (no ``pooch`` download):

=========================  ================  ==========================================
content id                 size (H x W)      what it shows
=========================  ================  ==========================================
``skimage_astronaut``      512 x 512         portrait of astronaut Eileen Collins
``skimage_chelsea``        300 x 451         a cat (``data.cat`` is the same photo)
``skimage_coffee``         400 x 600         a cup of coffee on a table
``skimage_motorcycle``     500 x 741         motorcycle, left view of the stereo pair
``skimage_rocket``         427 x 640         a rocket on its launch pad
=========================  ================  ==========================================

Left out: the immunohistochemistry micrograph (``ihc``: stained tissue, not a photo of a
scene), the greyscale photos (``camera``, ``moon``, ``coins``, ``page``, ``brick``, ``grass``,
``gravel``, ...), synthetic images (``colorwheel``, ``logo``, ``chessboard_RGB``), the mostly black
``hubble_deep_field`` and ``retina`` (a fundus photo whose corners are black), the right view of
the stereo motorcycle (same content as the left one), and photos that need a download
(``eagle``, ``lily``, ...).

Each photo is cut into non-overlapping tiles of ``tile`` pixels on a grid centred in the photo
(margins dropped evenly); photos smaller than one tile contribute nothing. With the default
192 x 256 tile (a quarter of KADID-10k's 384 x 512) that gives 17 tiles: 4 each from astronaut,
coffee, motorcycle and rocket, 1 from chelsea; the demo's 96 x 128 tiles give 90.

Every tile is min-max stretched to the full 0..255 range (``stretch``). The reference generator
stretches every input that way before distorting it (``mapmm``), so the stretched tile is the
pristine image the generator really works from: a distortion's identity level (Gaussian blur
level 1, say) returns exactly this tile, and a full-reference score against it measures the
distortion alone, not the stretch (against the unstretched tile, MS-SSIM of the identity was as
low as 0.90 on tiles of sky).

Tiles of one photo share its *content id*: later stages split pools by content so that no
photo appears on both sides of a split.
"""

from __future__ import annotations

import re
from functools import cache
from typing import NamedTuple

import numpy as np

DEFAULT_TILE = (192, 256)
"""(height, width) of a tile: 256 x 192, a quarter of KADID-10k's 512 x 384 images."""

# content id suffix -> loader of the (H, W, 3) uint8 photo. Order fixes tile order.
_PHOTOS: dict[str, str] = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "motorcycle": "stereo_motorcycle",
    "rocket": "rocket",
}

_TILE_NAME = re.compile(r"^(?P<content>skimage_[a-z]+)_t(?P<index>\d{2,})$")


class ReferenceTile(NamedTuple):
    """One embedded reference: unpacks as ``(name, image)`` like any synthesis reference."""

    name: str  # e.g. "skimage_coffee_t00"
    image: np.ndarray  # (H, W, 3) uint8 RGB

    @property
    def content(self) -> str:
        """Content id of the photo the tile was cut from, e.g. ``"skimage_coffee"``."""
        return content_id(self.name)


def stretch(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 min-max stretched to 0..255 over all channels, as the reference
    generator's ``mapmm`` does to its input (a constant image is returned as it is)."""
    low, high = int(image.min()), int(image.max())
    if high == low or (low == 0 and high == 255):
        return np.array(image, dtype=np.uint8, copy=True)
    scaled = (image.astype(np.float64) - low) * (255.0 / (high - low))
    return np.round(scaled).astype(np.uint8)


DEAD_LEAVES_PREFIX = "deadleaves"
"""Name prefix of the procedural references (``dead_leaves.dead_leaves_references``)."""
_DEAD_LEAVES_NAME = re.compile(rf"^{DEAD_LEAVES_PREFIX}_\d{{4,}}$")


def is_dead_leaves_name(name: str) -> bool:
    """True for the names ``dead_leaves_references`` gives (``deadleaves_0007``)."""
    return bool(_DEAD_LEAVES_NAME.match(name))


def content_id(name: str) -> str:
    """Content id of an embedded reference name: the photo of a tile (``skimage_coffee_t03`` ->
    ``skimage_coffee``); a procedural image (``deadleaves_0007``) is its own content."""
    if is_dead_leaves_name(name):
        return name
    match = _TILE_NAME.match(name)
    if match is None:
        raise ValueError(
            f"name: expected an embedded tile name like 'skimage_coffee_t00', got {name!r}"
        )
    return match["content"]


@cache
def _load_photo(key: str) -> np.ndarray:
    from skimage import data

    loaded = getattr(data, _PHOTOS[key])()
    if key == "motorcycle":
        loaded = loaded[0]  # (left, right, disparity) -> the left view
    photo = np.asarray(loaded)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3, (key, photo.shape)
    photo.setflags(write=False)  # cached: callers get copies of tiles, never this array
    return photo


def embedded_photos() -> dict[str, np.ndarray]:
    """The whole photos, keyed by content id (read-only (H, W, 3) uint8 arrays)."""
    return {f"skimage_{key}": _load_photo(key) for key in _PHOTOS}


def _check_tile(tile) -> tuple[int, int]:
    if (
        not isinstance(tile, (tuple, list))
        or len(tile) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in tile)
        or min(tile) < 8
    ):
        raise ValueError(f"tile: expected (height, width) integers >= 8, got {tile!r}")
    return int(tile[0]), int(tile[1])


def embedded_references(
    tile: tuple[int, int] = DEFAULT_TILE, max_tiles: int | None = None
) -> list[ReferenceTile]:
    """Reference tiles from the embedded photos, in a stable order.

    Args:
        tile: (height, width) of each tile in pixels.
        max_tiles: keep at most this many tiles. Tiles are taken round-robin over the photos
            (first tile of every photo, then the second, ...) so a small set still covers as
            many contents as possible. None keeps all.

    Returns:
        ``ReferenceTile(name, image)`` items, each tile stretched (``stretch``); ``name`` is ``skimage_<photo>_tNN`` with NN the
        tile's row-major index in its photo's grid, so a name always means the same pixels for
        a given ``tile`` whatever ``max_tiles`` is.
    """
    th, tw = _check_tile(tile)
    if max_tiles is not None and (
        isinstance(max_tiles, bool) or not isinstance(max_tiles, (int, np.integer)) or max_tiles < 1
    ):
        raise ValueError(f"max_tiles: expected a positive integer or None, got {max_tiles!r}")

    per_photo: list[list[ReferenceTile]] = []
    for content, photo in embedded_photos().items():
        h, w = photo.shape[:2]
        rows, cols = h // th, w // tw
        top, left = (h - rows * th) // 2, (w - cols * tw) // 2
        tiles = []
        for r in range(rows):
            for c in range(cols):
                y, x = top + r * th, left + c * tw
                crop = stretch(photo[y : y + th, x : x + tw])  # (th, tw, 3) uint8, a copy
                tiles.append(ReferenceTile(f"{content}_t{r * cols + c:02d}", crop))
        per_photo.append(tiles)
    if not any(per_photo):
        sizes = ", ".join(f"{p.shape[0]}x{p.shape[1]}" for p in embedded_photos().values())
        raise ValueError(
            f"tile: {tile!r} (height, width) fits in none of the embedded photos ({sizes}); "
            f"expected a smaller tile"
        )

    ordered: list[ReferenceTile] = []
    for rank in range(max(len(t) for t in per_photo)):
        ordered.extend(tiles[rank] for tiles in per_photo if rank < len(tiles))
    return ordered if max_tiles is None else ordered[: int(max_tiles)]
