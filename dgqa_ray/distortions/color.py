"""KADID colour family: types 4 to 8.

- 4 ``color_diffusion`` (``imcolordiffuse`` -> ``imcolorblur``): blur the a*, b* planes of CIELAB
  with sigma = 1.5 * amount + 2, then multiply them by ``amount``.
- 5 ``color_shift`` (``imcolorshift``): shift the green channel by ``amount`` pixels in a random
  direction, blended in only near edges (weight from the smoothed gradient magnitude).
- 6 ``color_quantization`` (``imcolorquantize``): ``rgb2ind(x, n)`` then ``ind2rgb``: an
  n-colour minimum-variance palette, pixels mapped with Floyd-Steinberg dithering.
- 7 ``color_saturation_hsv`` (``imcolorsaturate``): HSV saturation times ``factor`` (0 gives
  grey at each pixel's maximum; a negative factor pushes the other channels above the maximum,
  giving the complementary hue).
- 8 ``color_saturation_lab`` (``imsaturate``): CIELAB a*, b* times ``factor``.

Types 4 and 8 clip the sRGB result to [0, 1] (MATLAB ``truncate(lab2rgb(...))``); types 5, 6, 7
do not clip (their results are already in range or rescaled by the generator's final ``mapmm``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from . import _ops
from ._spec import Implementation

# ---------------------------------------------------------------------------------------------
# HSV (MATLAB rgb2hsv / hsv2rgb)
# ---------------------------------------------------------------------------------------------


def rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2hsv`` of (..., 3) RGB: hue in [0, 1), saturation (max-min)/max, value max.

    Grey pixels get hue 0 and black pixels saturation 0. Where two channels tie for the
    maximum MATLAB takes the last one (blue over green over red); the hue is the same anyway.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = np.maximum(np.maximum(r, g), b)  # faster than a max over the short channel axis
    delta = v - np.minimum(np.minimum(r, g), b)
    chroma = np.where(delta > 0, delta, 1.0)  # avoids 0/0 on grey pixels
    h = np.where(
        b == v, 4.0 + (r - g) / chroma, np.where(g == v, 2.0 + (b - r) / chroma, (g - b) / chroma)
    )
    h /= 6.0
    h = np.where(delta > 0, np.where(h < 0, h + 1.0, h), 0.0)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1.0), 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """MATLAB ``hsv2rgb`` of (..., 3) HSV, without clipping (saturation may be negative).

    Each channel is v - v * s * ramp(hue), with the piecewise-linear hue ramp of the six colour
    sectors. MATLAB additionally divides by the global maximum of the v-free values, which
    is 1 for s in [0, 1] and a global scale otherwise (removed by the generator's ``mapmm``).
    """
    h6, v = 6.0 * hsv[..., 0], hsv[..., 2]
    vs = v * hsv[..., 1]
    out = np.empty(hsv.shape)
    for c, offset in enumerate((5.0, 3.0, 1.0)):  # red, green, blue
        k = h6 + offset  # in [1, 12): wrap once instead of a (slow) np.mod
        k = np.where(k >= 6.0, k - 6.0, k)
        ramp = np.minimum(np.minimum(k, 4.0 - k), 1.0)
        out[..., c] = v - vs * np.maximum(ramp, 0.0)
    return out


def rgb2hsv_batch(rgb: torch.Tensor) -> torch.Tensor:
    """``rgb2hsv`` for a (B, 3, H, W) batch; returns (B, 3, H, W) with channels h, s, v."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    v = rgb.amax(dim=1)
    delta = v - rgb.amin(dim=1)
    chroma = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(
        b == v,
        4.0 + (r - g) / chroma,
        torch.where(g == v, 2.0 + (b - r) / chroma, (g - b) / chroma),
    )
    h = h / 6.0
    h = torch.where(delta > 0, torch.where(h < 0, h + 1.0, h), torch.zeros_like(h))
    s = torch.where(v > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack([h, s, v], dim=1)


def hsv2rgb_batch(hsv: torch.Tensor) -> torch.Tensor:
    """``hsv2rgb`` for a (B, 3, H, W) batch, without clipping."""
    h6, v = 6.0 * hsv[:, 0], hsv[:, 2]
    vs = v * hsv[:, 1]
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + offset, 6.0)
        ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
        channels.append(v - vs * ramp)
    return torch.stack(channels, dim=1)


# ---------------------------------------------------------------------------------------------
# Helpers of imcolorshift (MATLAB utils: gradmag1, percentile1, ps2, imshift)
# ---------------------------------------------------------------------------------------------


def _percentile_rank(n: int, perc: float) -> int:
    """1-based rank that MATLAB ``percentile1`` picks: round(n * perc / 100) clipped to [1, n]."""
    i = min(max(n * perc / 100.0, 1.0), float(n))
    return int(math.floor(i + 0.5))  # MATLAB round (half away from zero), i > 0


def _ps2(a: np.ndarray) -> np.ndarray:
    """MATLAB ``ps2(a)``: min-max, clip to the 1st..99th ``percentile1``, min-max again."""
    a = _ops.mapmm(a)
    flat = a.ravel()
    k = _percentile_rank(flat.size, 99.0) - 1
    high = np.partition(flat, k)[k]
    low = 1.0 - np.partition(1.0 - flat, k)[k]
    return _ops.mapmm(np.maximum(np.minimum(a, high), low))


def _ps2_batch(a: torch.Tensor) -> torch.Tensor:
    """``_ps2`` per image of a (B, 1, H, W) batch."""
    a = _ops.mapmm_batch(a)
    flat = a.flatten(1)
    k = _percentile_rank(flat.shape[1], 99.0)
    high = torch.kthvalue(flat, k, dim=1).values.view(-1, 1, 1, 1)
    low = 1.0 - torch.kthvalue(1.0 - flat, k, dim=1).values.view(-1, 1, 1, 1)
    return _ops.mapmm_batch(torch.maximum(torch.minimum(a, high), low))


def _gradient_magnitude_batch(a: torch.Tensor) -> torch.Tensor:
    """MATLAB ``gradmag1`` of (B, 1, H, W): |gradient| with central differences inside and
    one-sided differences on the borders (MATLAB ``gradient``, unit spacing); H, W >= 2."""

    def diff(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        first = t.narrow(dim, 1, 1) - t.narrow(dim, 0, 1)
        last = t.narrow(dim, n - 1, 1) - t.narrow(dim, n - 2, 1)
        inner = (t.narrow(dim, 2, n - 2) - t.narrow(dim, 0, n - 2)) / 2.0
        return torch.cat([first, inner, last], dim=dim)

    return torch.sqrt(diff(a, 2) ** 2 + diff(a, 3) ** 2)


def _edge_weight(gray: np.ndarray) -> np.ndarray:
    """The blending weight of ``imcolorshift``: 1 on strong edges, 0 in flat regions."""
    gy, gx = np.gradient(gray)  # MATLAB gradient: central inside, one-sided on the borders
    e = _ops.mapmm(_ops.gaussian_filter(np.hypot(gx, gy), 4.0))
    return _ps2(np.clip(e, 0.1, 1.0))


def _edge_weight_batch(gray: torch.Tensor) -> torch.Tensor:
    """``_edge_weight`` for (B, 1, H, W)."""
    e = _ops.mapmm_batch(_ops.gaussian_filter_batch(_gradient_magnitude_batch(gray), 4.0))
    return _ps2_batch(e.clamp(0.1, 1.0))


def _shift_offsets(unit: np.ndarray, amount: float) -> np.ndarray:
    """``round(normr(rand(1, 2)) * amount)``: integer (row, col) shift; 0 if the draw is 0."""
    norm = np.linalg.norm(unit)
    if norm == 0:
        return np.zeros(2, dtype=np.int64)
    return np.floor(unit / norm * amount + 0.5).astype(np.int64)  # non-negative: round


# ---------------------------------------------------------------------------------------------
# Wu's minimum-variance colour quantiser (the palette of MATLAB rgb2ind(x, n))
# ---------------------------------------------------------------------------------------------

_WU_LEVELS = 32  # colours are histogrammed with 5 bits per channel, as Wu's quantiser does


def _wu_moments(pixels: np.ndarray) -> np.ndarray:
    """Cumulative colour moments (33, 33, 33, 5): count, sum R, sum G, sum B, sum R^2+G^2+B^2.

    Index 0 along each axis is an empty plane so that box sums need no special case.
    """
    side = _WU_LEVELS + 1
    cells = (pixels >> 3).astype(np.intp) + 1  # (N, 3) in 1..32
    flat = (cells[:, 0] * side + cells[:, 1]) * side + cells[:, 2]
    p = pixels.astype(np.float64)
    hist = np.empty((5, side**3))  # moment-first so that the cumulative sums run contiguously
    hist[0] = np.bincount(flat, minlength=side**3)
    for c in range(3):
        hist[1 + c] = np.bincount(flat, weights=p[:, c], minlength=side**3)
    hist[4] = np.bincount(flat, weights=(p * p).sum(axis=1), minlength=side**3)
    hist = hist.reshape(5, side, side, side)
    for axis in (1, 2, 3):
        np.cumsum(hist, axis=axis, out=hist)
    return np.ascontiguousarray(hist.transpose(1, 2, 3, 0))


def _box_sum(cum: np.ndarray, lo: list[int], hi: list[int]) -> np.ndarray:
    """Moments of the box (lo, hi] (lower bounds exclusive) by inclusion-exclusion: (5,)."""
    (r0, g0, b0), (r1, g1, b1) = lo, hi
    return (
        cum[r1, g1, b1]
        - cum[r1, g1, b0]
        - cum[r1, g0, b1]
        + cum[r1, g0, b0]
        - cum[r0, g1, b1]
        + cum[r0, g1, b0]
        + cum[r0, g0, b1]
        - cum[r0, g0, b0]
    )


def _best_cut(
    cum_by_axis: list[np.ndarray], lo: list[int], hi: list[int], axis: int
) -> tuple[float, int]:
    """Best split plane of box (lo, hi] along ``axis``: (score, plane), plane -1 if none.

    ``cum_by_axis[axis]`` is the cumulative moments with ``axis`` moved first. The score is
    sum |colour sum|^2 / count over both halves; maximising it minimises the summed variance
    of the two halves.
    """
    c = cum_by_axis[axis]
    (p0, q0), (p1, q1) = (
        [lo[a] for a in range(3) if a != axis],
        [hi[a] for a in range(3) if a != axis],
    )
    planes = c[lo[axis] : hi[axis] + 1]  # cumulative up to each plane along the axis
    upto = planes[:, p1, q1] - planes[:, p1, q0] - planes[:, p0, q1] + planes[:, p0, q0]
    whole = upto[-1] - upto[0]
    lower = upto[1:-1] - upto[0]  # candidate cuts lo+1 .. hi-1
    upper = whole - lower
    valid = (lower[:, 0] > 0) & (upper[:, 0] > 0)
    if not valid.any():
        return 0.0, -1
    score = np.where(
        valid,
        (lower[:, 1:4] ** 2).sum(1) / np.where(valid, lower[:, 0], 1.0)
        + (upper[:, 1:4] ** 2).sum(1) / np.where(valid, upper[:, 0], 1.0),
        0.0,
    )
    best = int(np.argmax(score))
    if score[best] <= 0:
        return 0.0, -1
    return float(score[best]), lo[axis] + 1 + best


def _box_variance(cum: np.ndarray, lo: list[int], hi: list[int]) -> float:
    """Summed squared deviation of the box's pixels; 0 for a single histogram cell."""
    if math.prod(h - low for h, low in zip(hi, lo, strict=True)) <= 1:
        return 0.0
    m = _box_sum(cum, lo, hi)
    return float(m[4] - (m[1] ** 2 + m[2] ** 2 + m[3] ** 2) / m[0])


def wu_palette(pixels: np.ndarray, n_colors: int) -> np.ndarray:
    """Minimum-variance palette of (N, 3) uint8 colours (X. Wu, Graphics Gems II, 1991).

    The colour cube is split greedily: the box with the largest variance is cut by the plane
    that leaves the smallest summed variance, until ``n_colors`` boxes (fewer if the image has
    fewer colour cells). Each box's colour is its pixels' mean, truncated as Wu's code does.
    Returns (K, 3) uint8, K <= n_colors.
    """
    cum = _wu_moments(pixels)
    cum_by_axis = [np.moveaxis(cum, axis, 0) for axis in range(3)]
    boxes = [([0, 0, 0], [_WU_LEVELS] * 3)]
    variance = [0.0]
    target = 0
    while len(boxes) < n_colors:
        lo, hi = boxes[target]
        cuts = [_best_cut(cum_by_axis, lo, hi, axis) for axis in range(3)]
        scores = [c[0] for c in cuts]
        # Ties go to red, then green (Wu's order); red with no cut means the box cannot split.
        if scores[0] >= scores[1] and scores[0] >= scores[2]:
            axis = 0
        elif scores[1] >= scores[2]:
            axis = 1
        else:
            axis = 2
        plane = cuts[axis][1]
        if plane < 0:
            variance[target] = 0.0
        else:
            new_lo, low_hi = list(lo), list(hi)
            new_lo[axis] = plane
            low_hi[axis] = plane
            boxes[target] = (lo, low_hi)
            boxes.append((new_lo, list(hi)))
            variance[target] = _box_variance(cum, lo, low_hi)
            variance.append(_box_variance(cum, new_lo, hi))
        target = int(np.argmax(variance))
        if variance[target] <= 0:
            break
    sums = np.array([_box_sum(cum, lo, hi) for lo, hi in boxes])  # (K, 5)
    return np.floor(sums[:, 1:4] / sums[:, :1]).astype(np.uint8)


def _dither_to_palette(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg map of an (H, W, 3) uint8 image onto a (K, 3) palette: (H, W) indices."""
    # Pillow needs a 256-entry palette; repeat the first colour so padding adds no new colour.
    full = np.concatenate([palette, np.repeat(palette[:1], 256 - len(palette), axis=0)])
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette(full.astype(np.uint8).ravel().tolist())
    mapped = Image.fromarray(image).quantize(
        palette=palette_image, dither=Image.Dither.FLOYDSTEINBERG
    )
    index = np.asarray(mapped)
    return np.where(index < len(palette), index, 0)  # a padding entry is palette[0]


# ---------------------------------------------------------------------------------------------
# 4. color_diffusion
# ---------------------------------------------------------------------------------------------


def color_diffusion(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imcolordiffuse``: a*, b* blurred with sigma 1.5*amount + 2 and scaled by amount."""
    lab = _ops.rgb2lab(img)
    lab[..., 1:] = _ops.gaussian_filter(lab[..., 1:], 1.5 * amount + 2.0) * amount
    return _ops.truncate(_ops.lab2rgb(lab))


def color_diffusion_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``color_diffusion`` for a (B, 3, H, W) batch."""
    lab = _ops.rgb2lab_batch(x)
    ab = _ops.gaussian_filter_batch(lab[:, 1:], 1.5 * amount + 2.0) * amount
    return _ops.truncate(_ops.lab2rgb_batch(torch.cat([lab[:, :1], ab], dim=1)))


# ---------------------------------------------------------------------------------------------
# 5. color_shift
# ---------------------------------------------------------------------------------------------


def color_shift(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imcolorshift``: the green channel moved ``amount`` pixels, visible near edges only.

    The direction is random: (rows, cols) = round(amount * u / |u|) with u uniform in
    [0, 1)^2, so the shift always points down and/or right. Edges are replicated.
    """
    h, w, _ = img.shape
    weight = _edge_weight(_ops.rgb2gray(img))  # (H, W) in [0, 1]
    dy, dx = _shift_offsets(rng.random(2), amount)
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    green = img[..., 1]
    out = img.copy()
    out[..., 1] = green[np.ix_(rows, cols)] * weight + green * (1.0 - weight)
    return out


def color_shift_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``color_shift`` for a (B, 3, H, W) batch: its own random direction per image."""
    b, _, h, w = x.shape
    weight = _edge_weight_batch(_ops.rgb2gray_batch(x))[:, 0]  # (B, H, W)
    unit = torch.rand((b, 2), generator=gen, device=x.device, dtype=torch.float64)
    norm = unit.norm(dim=1, keepdim=True)
    shift = torch.where(norm > 0, torch.floor(unit / norm.clamp_min(1e-300) * amount + 0.5), 0.0)
    shift = shift.long()  # (B, 2): rows, cols
    rows = (torch.arange(h, device=x.device) - shift[:, :1]).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=x.device) - shift[:, 1:]).clamp(0, w - 1)  # (B, W)
    green = x[:, 1]
    batch_index = torch.arange(b, device=x.device).view(b, 1, 1)
    shifted = green[batch_index, rows[:, :, None], cols[:, None, :]]  # (B, H, W)
    out = x.clone()
    out[:, 1] = shifted * weight + green * (1.0 - weight)
    return out


# ---------------------------------------------------------------------------------------------
# 6. color_quantization
# ---------------------------------------------------------------------------------------------


def color_quantization(img: np.ndarray, n_colors: float, rng: np.random.Generator) -> np.ndarray:
    """``imcolorquantize``: ``rgb2ind(x, n)`` (minimum-variance palette, Floyd-Steinberg
    dithering) followed by ``ind2rgb``; returns palette colours in [0, 1]."""
    n = int(n_colors)
    if n != n_colors or not 2 <= n <= 256:
        raise ValueError(
            f"n_colors: expected an integer number of colours in 2..256, got {n_colors!r}"
        )
    image = _ops.to_uint8(img)
    palette = wu_palette(image.reshape(-1, 3), n)
    index = _dither_to_palette(image, palette)
    return palette[index].astype(np.float64) / 255.0


# ---------------------------------------------------------------------------------------------
# 7. color_saturation_hsv
# ---------------------------------------------------------------------------------------------


def color_saturation_hsv(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """``imcolorsaturate``: HSV saturation multiplied by ``factor`` (not clipped)."""
    hsv = rgb2hsv(img)
    hsv[..., 1] *= factor
    return hsv2rgb(hsv)


def color_saturation_hsv_batch(
    x: torch.Tensor, factor: float, gen: torch.Generator
) -> torch.Tensor:
    """``color_saturation_hsv`` for a (B, 3, H, W) batch."""
    hsv = rgb2hsv_batch(x)
    hsv[:, 1] *= factor
    return hsv2rgb_batch(hsv)


# ---------------------------------------------------------------------------------------------
# 8. color_saturation_lab
# ---------------------------------------------------------------------------------------------


def color_saturation_lab(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """``imsaturate``: CIELAB a*, b* multiplied by ``factor``, sRGB clipped to [0, 1]."""
    lab = _ops.rgb2lab(img)
    lab[..., 1:] *= factor
    return _ops.truncate(_ops.lab2rgb(lab))


def color_saturation_lab_batch(
    x: torch.Tensor, factor: float, gen: torch.Generator
) -> torch.Tensor:
    """``color_saturation_lab`` for a (B, 3, H, W) batch."""
    lab = _ops.rgb2lab_batch(x)
    lab = torch.cat([lab[:, :1], lab[:, 1:] * factor], dim=1)
    return _ops.truncate(_ops.lab2rgb_batch(lab))


IMPLEMENTATIONS: dict[str, Implementation] = {
    "color_diffusion": Implementation(color_diffusion, color_diffusion_batch, stochastic=False),
    "color_shift": Implementation(color_shift, color_shift_batch, stochastic=True),
    "color_quantization": Implementation(color_quantization, None, stochastic=False),
    "color_saturation_hsv": Implementation(
        color_saturation_hsv, color_saturation_hsv_batch, stochastic=False
    ),
    "color_saturation_lab": Implementation(
        color_saturation_lab, color_saturation_lab_batch, stochastic=False
    ),
}
