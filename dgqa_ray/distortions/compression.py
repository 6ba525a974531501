"""KADID compression family: 9 JPEG 2000, 10 JPEG.

The reference (``imcompressjp2k``, ``imcompressjpeg``) writes the image to a temporary file with
MATLAB ``imwrite`` and reads it back. Here the same round trip runs in memory with Pillow's
codecs: OpenJPEG for JPEG 2000 and libjpeg(-turbo) for JPEG. Both types are deterministic and
have no torch kernel (``batch=None``): a codec is not array math, so the registry runs them image
by image on the CPU.

Like ``imwrite`` of a double image, the encoders get ``im2uint8(x)``; like ``im2double`` the
decoded uint8 image comes back divided by 255.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from ._ops import to_uint8
from ._spec import Implementation

# JPEG 2000 codestream marker that opens the first tile-part: everything before it is the main
# header (SOC, SIZ, COD, QCD, COM).
_SOT_MARKER = b"\xff\x90"

# ---------------------------------------------------------------------------------------------
# 9. JPEG 2000 (imcompressjp2k)
# ---------------------------------------------------------------------------------------------


def _encode_jpeg2000_raw(rgb: np.ndarray, pillow_ratio: float) -> bytes:
    """Encode (H, W, 3) uint8 as a lossy JPEG 2000 codestream with OpenJPEG's rate control.

    Settings follow MATLAB ``imwrite(..., 'jp2')`` defaults: ``Mode`` 'lossy' (irreversible 9/7
    wavelet), irreversible colour transform for RGB (``mct=1``; without it the three channels
    are coded independently: 1-4 dB worse PSNR at the same size), one quality layer, LRCP order,
    64x64 code blocks, one tile, 5 decomposition levels (Pillow's ``num_resolutions`` 6, lowered
    by Pillow for images too small for that).
    """
    buf = io.BytesIO()
    Image.fromarray(rgb).save(
        buf,
        format="JPEG2000",
        no_jp2=True,  # raw codestream: no JP2 boxes, same pixels
        irreversible=True,
        mct=1,
        quality_mode="rates",
        quality_layers=[pillow_ratio],
        progression="LRCP",
        codeblock_size=(64, 64),
    )
    return buf.getvalue()


@lru_cache(maxsize=64)
def _jpeg2000_main_header_bytes(height: int, width: int) -> int:
    """Size of the codestream main header for an image of this size (content-independent)."""
    probe = _encode_jpeg2000_raw(np.zeros((height, width, 3), np.uint8), 16.0)
    return probe.index(_SOT_MARKER)


def encode_jpeg2000(rgb: np.ndarray, ratio: float) -> bytes:
    """JPEG 2000 codestream of (H, W, 3) uint8 with ``imwrite``'s ``'CompressionRatio', ratio``.

    MATLAB's ratio is raw bytes / compressed bytes *not counting the header*; OpenJPEG's rate
    counts the main header in the budget. The ratio handed to OpenJPEG is therefore lowered so
    that the data after the main header comes out at about ``H * W * 3 / ratio`` bytes.
    """
    if not ratio >= 1.0:
        raise ValueError(f"ratio: expected a JPEG 2000 compression ratio >= 1, got {ratio!r}")
    height, width = rgb.shape[:2]
    raw_bytes = rgb.size
    header = _jpeg2000_main_header_bytes(height, width)
    pillow_ratio = raw_bytes / (raw_bytes / ratio + header)
    return _encode_jpeg2000_raw(rgb, max(pillow_ratio, 1.0))


def jpeg2000(img: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``imcompressjp2k(I, ratio)``: JPEG 2000 at compression ratio ``ratio`` and back.

    (H, W, 3) float64 in [0, 1] -> (H, W, 3) float64 multiples of 1/255.
    """
    del rng  # deterministic
    data = encode_jpeg2000(to_uint8(img), ratio)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # (H, W, 3) uint8
    return decoded.astype(np.float64) / 255.0


# ---------------------------------------------------------------------------------------------
# 10. JPEG (imcompressjpeg)
# ---------------------------------------------------------------------------------------------


def encode_jpeg(rgb: np.ndarray, quality: float) -> bytes:
    """Baseline JPEG of (H, W, 3) uint8 as ``imwrite(..., 'jpg', 'Quality', quality)`` writes it.

    MATLAB's writer is IJG libjpeg with its defaults: the standard luminance/chrominance tables
    scaled by the IJG quality formula (Pillow uses the same), 4:2:0 chroma subsampling (2x2 for
    Y, 1x1 for Cb and Cr, as ``jpeg_set_defaults`` sets), Huffman tables not optimised (lossless
    anyway). Pillow's own default for ``subsampling`` is 4:2:0 too; it is set explicitly here
    because it changes the pixels.
    """
    if not 0 <= quality <= 100:
        raise ValueError(f"quality: expected a JPEG quality in [0, 100], got {quality!r}")
    buf = io.BytesIO()
    # The KADID levels are integers; IJG libjpeg clamps quality 0 to 1.
    q = max(1, int(np.floor(quality + 0.5)))
    Image.fromarray(rgb).save(buf, format="JPEG", quality=q, subsampling="4:2:0")
    return buf.getvalue()


def jpeg(img: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """``imcompressjpeg(I, quality)``: JPEG at quality ``quality`` and back.

    (H, W, 3) float64 in [0, 1] -> (H, W, 3) float64 multiples of 1/255.
    """
    del rng  # deterministic
    data = encode_jpeg(to_uint8(img), quality)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # (H, W, 3) uint8
    return decoded.astype(np.float64) / 255.0


IMPLEMENTATIONS: dict[str, Implementation] = {
    "jpeg2000": Implementation(single=jpeg2000, batch=None, stochastic=False),
    "jpeg": Implementation(single=jpeg, batch=None, stochastic=False),
}
