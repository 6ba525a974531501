"""KADID spatial family: 19 jitter, 20 non-eccentricity patch, 21 pixelate, 22 quantization,
23 colour block.

Each type mirrors one routine of the reference generator: ``imjitter`` (5 random bicubic
warps), ``imnoneccentricity`` (16x16 patches copied a few pixels away), ``impixelate``
(nearest-neighbour down- and up-sampling), ``imnoisequantize`` (multi-level Otsu thresholds,
``multithresh`` + ``imquantize``) and ``imcolorblock`` (32x32 squares of random colour).

Coordinates: the reference is MATLAB (1-based); every position drawn here is converted to
0-based indices at the point where it is drawn, with the conversion spelled out.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ._spec import Implementation

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _count(value: float, name: str, low: int = 0, high: int | None = None) -> int:
    """A level parameter that counts things (patches, blocks, thresholds) as an int."""
    n = int(round(float(value)))
    if n != float(value) or n < low or (high is not None and n > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return n


def _round_np(v: np.ndarray | float) -> np.ndarray:
    """MATLAB ``round``: halves go away from zero (NumPy's ``round`` goes to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _round_torch(v: torch.Tensor) -> torch.Tensor:
    """MATLAB ``round`` for tensors."""
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


# ---------------------------------------------------------------------------------------------
# 19. jitter (imjitter -> imscatter -> imwarpmap, interp2 'cubic')
# ---------------------------------------------------------------------------------------------

JITTER_ITERATIONS = 5  # imjitter calls imscatter(I, [], amount, 5)


def _keys_weights(t):
    """Keys cubic-convolution weights (a = -0.5, MATLAB interp2 'cubic') for taps -1, 0, 1, 2.

    ``t`` is the fractional position in [0, 1); works on NumPy arrays and torch tensors.
    torch's ``grid_sample(mode='bicubic')`` uses a = -0.75, which is why it is not used here.
    """
    t2 = t * t
    u = t - 1.0
    return [
        -0.5 * t * u * u,
        (1.5 * t - 2.5) * t2 + 1.0,
        (2.0 - 1.5 * t) * t2 + 0.5 * t,
        0.5 * t2 * u,
    ]


def _fold_boundary(w: list, at_low, at_high, where) -> list:
    """Apply interp2 'cubic' (Keys) boundary conditions at the ends of the padded grid.

    MATLAB's cubic convolution extends the grid by one sample on each side with
    f(-1) = 3 f(0) - 3 f(1) + f(2) (and the mirror formula past the end). When a sample's
    first (last) tap falls on that extension, its weight is folded onto the three taps the
    extension is made of. ``at_low`` / ``at_high`` mark those samples; ``where`` is
    ``np.where`` or ``torch.where``.
    """
    e = where(at_low, w[0], 0.0)
    w = [w[0] - e, w[1] + 3.0 * e, w[2] - 3.0 * e, w[3] + e]
    e = where(at_high, w[3], 0.0)
    return [w[0] + e, w[1] - 3.0 * e, w[2] + 3.0 * e, w[3] - e]


def _axis_taps(pos, n: int, margin):
    """First tap index and the 4 tap weights for sampling an axis of length ``n`` at ``pos``.

    The reference pads the image by ``margin`` replicated samples, interpolates on that padded
    grid (indices -margin .. n-1+margin here) and crops. A position beyond the padded grid is
    NaN in MATLAB; here it is clamped onto the grid's end (see the module's docs). Returns
    (k0 - 1, [w_-1, w_0, w_1, w_2]): the taps are k0-1 .. k0+2, k0 = floor(pos), all within
    -margin-1 .. n+margin. NumPy arrays (``margin`` an int) or torch tensors (``margin`` a
    tensor broadcastable to ``pos``: one per image).
    """
    lo, hi = -margin, n - 1 + margin
    if isinstance(pos, torch.Tensor):
        pos = torch.minimum(torch.maximum(pos, lo), hi)
        k0 = torch.floor(pos)
        w = _fold_boundary(_keys_weights(pos - k0), k0 == lo, k0 == hi - 1, torch.where)
        return k0.long() - 1, w
    pos = np.minimum(np.maximum(pos, lo), hi)
    k0 = np.floor(pos)
    w = _keys_weights(pos - k0)
    # With a margin of 2 or more, the three taps a boundary fold moves weight onto all read the
    # same replicated edge value as the extension itself: the fold cannot change the result.
    if margin <= 1:
        w = _fold_boundary(w, k0 == lo, k0 == hi - 1, np.where)
    return k0.astype(np.intp) - 1, w


# Pixels per block in the NumPy warp: keeps the (C, 16, block) tap array near 1 MB, so the
# temporaries are recycled by malloc instead of being returned to the OS and page-faulted
# back in on every call (that alone made the unblocked warp ~3x slower).
_WARP_BLOCK_PIXELS = 8192


def _tap_offsets(row_stride: int, like):
    """Flat offsets (16,) of the 4x4 taps from the first one, row-major, NumPy or torch."""
    if isinstance(like, torch.Tensor):
        d = torch.arange(4, device=like.device)
    else:
        d = np.arange(4)
    return (d[:, None] * row_stride + d[None, :]).reshape(16)


def _warp_cubic_np(img: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """``imwarpmap(img, cat(3, sy, sx), 'bicubic', true)``: out(r, c) = img(r - sy, c - sx).

    img (C, H, W) float32, channel-first so that each channel is one contiguous gather;
    sy, sx (H, W). The padding margins are ceil(max |sx|) rows and ceil(max |sy|) columns: the
    reference pairs them that way round (``padarray`` gets [max|sx| max|sy|] as [rows cols]);
    kept, as it decides which samples see the padded grid's end.
    """
    c, h, w = img.shape
    margin_rows = math.ceil(float(np.abs(sx).max()))
    margin_cols = math.ceil(float(np.abs(sy).max()))
    # Replicate-pad past every tap (-margin-1 .. n+margin) so no tap index needs clamping.
    pr, pc = margin_rows + 2, margin_cols + 2
    src = np.pad(img, ((0, 0), (pr, pr), (pc, pc)), mode="edge")  # (C, Hp, Wp)
    wp = w + 2 * pc
    src = src.reshape(c, -1)
    offsets = _tap_offsets(wp, src)[:, None]  # (16, 1)
    out = np.empty_like(img)
    step = max(1, _WARP_BLOCK_PIXELS // w)
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        n = (r1 - r0) * w
        rows = np.arange(r0, r1, dtype=sy.dtype)[:, None] - sy[r0:r1]  # (rows, W) sampled row
        cols = np.arange(w, dtype=sx.dtype)[None, :] - sx[r0:r1]  # (rows, W) sampled column
        kr, wr = _axis_taps(rows.ravel(), h, margin_rows)  # (n,), 4 x (n,)
        kc, wc = _axis_taps(cols.ravel(), w, margin_cols)
        index = ((kr + pr) * wp + (kc + pc))[None, :] + offsets  # (16, n)
        weight = (np.stack(wr)[:, None] * np.stack(wc)[None, :]).reshape(16, n)
        taps = np.take(src, index, axis=1, mode="clip")  # (C, 16, n); indices are valid
        np.einsum("kn,ckn->cn", weight, taps, out=out[:, r0:r1].reshape(c, n))
    return out


def jitter(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``imjitter(I, amount)``: 5 warps, each by an i.i.d. N(0, amount^2) shift per pixel.

    Each iteration draws a (2, H, W) field (row shift, column shift) and resamples the current
    image with MATLAB's bicubic (Keys) interpolation. The warps run in float32 (3x faster
    gathers; the error, ~1e-7, is far below one grey level).
    """
    h, w, _ = img.shape
    out = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)  # (3, H, W)
    for _ in range(JITTER_ITERATIONS):
        shifts = rng.standard_normal((2, h, w), dtype=np.float32) * np.float32(amount)
        out = _warp_cubic_np(out, shifts[0], shifts[1])  # shifts: [sy, sx]
    return out.transpose(1, 2, 0).astype(np.float64)


# Pixels per block (all images together) in the torch warp on the CPU, for the same reason as
# _WARP_BLOCK_PIXELS; on a GPU the whole batch is one block (fewer kernel launches).
_WARP_BLOCK_PIXELS_TORCH_CPU = 16384


def _warp_cubic_torch(x: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor) -> torch.Tensor:
    """``_warp_cubic_np`` for a batch: x (B, C, H, W), sy and sx (B, H, W)."""
    b, c, h, w = x.shape
    margin_rows = sx.abs().flatten(1).amax(dim=1).ceil().view(b, 1)  # per image
    margin_cols = sy.abs().flatten(1).amax(dim=1).ceil().view(b, 1)
    # One replicate pad for the whole batch, wide enough for the largest margin.
    pr = int(margin_rows.max()) + 2
    pc = int(margin_cols.max()) + 2
    wp = w + 2 * pc
    src = F.pad(x, (pc, pc, pr, pr), mode="replicate").reshape(b, c, -1)  # (B, C, Hp * Wp)
    offsets = _tap_offsets(wp, x).tolist()
    out = torch.zeros_like(x)
    if x.device.type == "cpu":
        step = max(1, _WARP_BLOCK_PIXELS_TORCH_CPU // (b * w))
    else:
        step = h
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        n = (r1 - r0) * w
        rows = torch.arange(r0, r1, device=x.device, dtype=x.dtype).view(1, -1, 1)
        rows = rows - sy[:, r0:r1]  # (B, rows, W) sampled row
        cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) - sx[:, r0:r1]
        kr, wr = _axis_taps(rows.reshape(b, n), h, margin_rows)  # (B, n), 4 x (B, n)
        kc, wc = _axis_taps(cols.reshape(b, n), w, margin_cols)
        first = (kr + pr) * wp + (kc + pc)  # (B, n) flat index of the top-left tap
        acc = out[:, :, r0:r1].reshape(b, c, n)  # a view: rows r0..r1 are contiguous
        tap = torch.empty_like(acc)
        index = torch.empty_like(first)
        weight = torch.empty_like(wr[0])
        # Tap by tap: 16 gathers of (B, C, n) instead of one (B, C, 16, n), accumulated in
        # place so that no tap allocates.
        for i in range(4):
            for j in range(4):
                torch.add(first, offsets[4 * i + j], out=index)
                torch.gather(src, 2, index.unsqueeze(1).expand(b, c, n), out=tap)
                torch.mul(wr[i], wc[j], out=weight)
                acc.addcmul_(tap, weight.unsqueeze(1))
    return out


def jitter_batch(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """``jitter`` for a (B, 3, H, W) batch; each image draws its own shift fields."""
    b, _, h, w = x.shape
    out = x
    for _ in range(JITTER_ITERATIONS):
        shifts = torch.randn((b, 2, h, w), generator=gen, device=x.device, dtype=x.dtype)
        shifts = shifts * amount  # (B, [sy, sx], H, W)
        out = _warp_cubic_torch(out, shifts[:, 0], shifts[:, 1])
    return out


# ---------------------------------------------------------------------------------------------
# 20. non-eccentricity patch (imnoneccentricity)
# ---------------------------------------------------------------------------------------------

PATCH_SIZE = 16  # imnoneccentricity: patch_size = [16 16]
PATCH_RADIUS = 16  # margin kept from the border and the span of the copy offset


def _patch_positions(h: int, w: int, draws):
    """Source and destination top-left corners (0-based) from uniform draws (..., 4).

    Reference (1-based): w_start = round(u1 * (w_max - w_min)) + w_min with w_min = radius,
    w_max = w - patch - radius (same for rows with u2); the destination is
    round((u - 0.5) * radius + start) with u3 (columns) and u4 (rows). Subtracting 1 converts
    both to 0-based. For images under 48 pixels the reference indexes outside the image and
    errors; here positions are clamped so that the patch stays inside.
    Works with NumPy arrays and torch tensors (``draws`` decides).
    """
    is_torch = isinstance(draws, torch.Tensor)
    rnd = _round_torch if is_torch else _round_np

    def clamp(v, n):
        hi = n - min(PATCH_SIZE, n)
        return v.clamp(0, hi) if is_torch else np.clip(v, 0, hi)

    u_w, u_h, v_w, v_h = (draws[..., k] for k in range(4))
    w_start = rnd(u_w * (w - PATCH_SIZE - 2 * PATCH_RADIUS)) + PATCH_RADIUS  # 1-based
    h_start = rnd(u_h * (h - PATCH_SIZE - 2 * PATCH_RADIUS)) + PATCH_RADIUS
    dst_w = rnd((v_w - 0.5) * PATCH_RADIUS + w_start)  # 1-based
    dst_h = rnd((v_h - 0.5) * PATCH_RADIUS + h_start)
    return (
        clamp(h_start - 1, h),
        clamp(w_start - 1, w),
        clamp(dst_h - 1, h),
        clamp(dst_w - 1, w),
    )


def non_eccentricity_patch(img: np.ndarray, patches: float, rng: np.random.Generator):
    """``imnoneccentricity(I, pnum)``: copy ``pnum`` 16x16 patches to a nearby position.

    Patches are copied one after another on the evolving image (a later patch may pick up an
    earlier copy), as the reference does.
    """
    n = _count(patches, "patches")
    h, w, _ = img.shape
    ph, pw = min(PATCH_SIZE, h), min(PATCH_SIZE, w)
    src_r, src_c, dst_r, dst_c = (
        v.astype(np.intp) for v in _patch_positions(h, w, rng.random((n, 4)))
    )
    out = np.array(img, dtype=np.float64, copy=True)
    for k in range(n):
        patch = out[src_r[k] : src_r[k] + ph, src_c[k] : src_c[k] + pw].copy()
        out[dst_r[k] : dst_r[k] + ph, dst_c[k] : dst_c[k] + pw] = patch
    return out


def non_eccentricity_patch_batch(x: torch.Tensor, patches: float, gen: torch.Generator):
    """``non_eccentricity_patch`` for a (B, 3, H, W) batch: per-image positions."""
    n = _count(patches, "patches")
    b, _, h, w = x.shape
    ph, pw = min(PATCH_SIZE, h), min(PATCH_SIZE, w)
    draws = torch.rand((b, n, 4), generator=gen, device=x.device, dtype=torch.float64)
    src_r, src_c, dst_r, dst_c = (v.long() for v in _patch_positions(h, w, draws))  # (B, n)
    ar_h = torch.arange(ph, device=x.device)
    ar_w = torch.arange(pw, device=x.device)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = x.clone()
    for k in range(n):
        rows = (src_r[:, k, None] + ar_h).view(b, ph, 1)
        cols = (src_c[:, k, None] + ar_w).view(b, 1, pw)
        patch = out[bi, :, rows, cols]  # (B, ph, pw, C): advanced indices come first
        rows = (dst_r[:, k, None] + ar_h).view(b, ph, 1)
        cols = (dst_c[:, k, None] + ar_w).view(b, 1, pw)
        out[bi, :, rows, cols] = patch
    return out


# ---------------------------------------------------------------------------------------------
# 21. pixelate (impixelate: two nearest-neighbour imresize calls)
# ---------------------------------------------------------------------------------------------


def _imresize_nearest_index(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """0-based source index per output index of MATLAB ``imresize(..., 'nearest')`` on an axis.

    MATLAB maps output x (1-based) to input u = x / scale + 0.5 * (1 - 1 / scale) and takes the
    pixel whose box [j - 0.5, j + 0.5) holds u: j = floor(u + 0.5). Indices past the ends are
    mirrored (``imresize``'s symmetric extension), which can happen at the far end when
    shrinking. Nearest has no antialiasing in MATLAB, so shrinking needs no wider kernel.
    """
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    j = np.floor(u + 0.5).astype(np.intp)  # 1-based
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    return mirror[(j - 1) % (2 * n_in)]


@lru_cache(maxsize=256)
def _pixelate_index(n: int, strength: float) -> np.ndarray:
    """Source index per output index along an axis of length ``n`` (both resizes composed)."""
    limit = 0.95 ** (1.0 / 0.6)  # z = 0.95 - strength^0.6 must stay positive
    if not 0.0 <= strength < limit:
        raise ValueError(f"ratio: expected a value in [0, {limit:.4f}), got {strength!r}")
    z = 0.95 - strength**0.6
    n_small = math.ceil(z * n)  # imresize(I, z): output size ceil(z * size)
    down = _imresize_nearest_index(n, n_small, z)
    up = _imresize_nearest_index(n_small, n, n / n_small)  # given a size: scale = out / in
    index = down[up]
    index.setflags(write=False)  # cached: must not be modified by callers
    return index


def pixelate(img: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``impixelate(I, strength)``: nearest-neighbour resize by z = 0.95 - strength^0.6 and
    back to the original size."""
    del rng
    h, w, _ = img.shape
    return img[np.ix_(_pixelate_index(h, float(ratio)), _pixelate_index(w, float(ratio)))]


def pixelate_batch(x: torch.Tensor, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """``pixelate`` for a (B, 3, H, W) batch."""
    del gen
    _, _, h, w = x.shape
    rows = torch.tensor(_pixelate_index(h, float(ratio)), device=x.device)
    cols = torch.tensor(_pixelate_index(w, float(ratio)), device=x.device)
    return x.index_select(2, rows).index_select(3, cols)


# ---------------------------------------------------------------------------------------------
# 22. quantization (imnoisequantize: multithresh + imquantize)
# ---------------------------------------------------------------------------------------------

HIST_BINS = 256  # multithresh's histogram of a float image
# A value whose scaled position x * 255 lies exactly half-way between two bin centres goes to
# the upper bin (round half up). Images made from uint8 hit such ties; their other values lie
# at least 1 / 510 from a tie, while float32 rounding moves x * 255 by ~2e-5, so this tolerance
# makes the float32 batch and the float64 single path bin every pixel identically.
_TIE_TOL = 5e-4


def _otsu_thresholds(hist: np.ndarray, n: int) -> np.ndarray:
    """Exact multi-level Otsu: ``n`` thresholds (bin indices) maximising between-class variance.

    hist (B, 256) counts -> (B, n) int bin indices t_1 < ... < t_n; class k holds bins
    t_{k-1}+1 .. t_k. Between-class variance is sum_k w_k mu_k^2 - mu^2, and the sum splits
    over classes, so dynamic programming over the class end points finds the global optimum in
    O(n * 256^2). MATLAB's ``multithresh`` searches (fminsearch) for n > 2 and can stop at a
    local optimum; this returns the global one.
    """
    b, nbins = hist.shape
    counts = hist.astype(np.float64)
    zero = np.zeros((b, 1))
    c0 = np.concatenate([zero, np.cumsum(counts, axis=1)], axis=1)  # (B, 257)
    c1 = np.concatenate([zero, np.cumsum(counts * np.arange(nbins), axis=1)], axis=1)
    weight = c0[:, None, :] - c0[:, :, None]  # (B, a, e): pixels in bins a .. e-1
    moment = c1[:, None, :] - c1[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(weight > 0, moment * moment / weight, 0.0)
    start, end = np.meshgrid(np.arange(nbins + 1), np.arange(nbins + 1), indexing="ij")
    score[:, end <= start] = -np.inf  # a class covers at least one bin
    best = score[:, 0, :]  # (B, 257): one class covering bins 0 .. e-1
    back = []
    for _ in range(n):  # append classes 2 .. n+1
        cand = best[:, :, None] + score  # (B, a, e): classes so far end at a, next is a .. e-1
        arg = cand.argmax(axis=1)  # (B, e)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0, :]
        back.append(arg)
    ends = np.full(b, nbins)
    thresholds = []
    rows = np.arange(b)
    for arg in reversed(back):
        ends = arg[rows, ends]  # start bin of the next class
        thresholds.append(ends - 1)  # last bin of this class
    return np.stack(thresholds[::-1], axis=1)


def _bin_index_np(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``imhist`` bin (0..255) of each value after ``multithresh``'s min-max normalisation."""
    scaled = (x - lo) / (hi - lo) * (HIST_BINS - 1)
    return np.clip(np.floor(scaled + 0.5 + _TIE_TOL), 0, HIST_BINS - 1).astype(np.intp)


def quantization(img: np.ndarray, levels: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoisequantize(I, levels)``: ``levels`` Otsu thresholds over all channels together,
    then ``imquantize`` with values [0, t_2 .. t_n, 1].

    x <= t_1 -> 0; t_{k-1} < x <= t_k -> t_k; x > t_n -> 1.
    """
    del rng
    n = _count(levels, "levels", 1, HIST_BINS - 1)
    lo, hi = float(img.min()), float(img.max())
    if lo == hi:  # a constant image has no classes to separate
        return np.array(img, dtype=np.float64, copy=True)
    hist = np.bincount(_bin_index_np(img, lo, hi).ravel(), minlength=HIST_BINS)
    bins = _otsu_thresholds(hist[None], n)[0]
    thresholds = lo + bins / (HIST_BINS - 1) * (hi - lo)  # bin centre, as multithresh maps back
    values = np.concatenate([[0.0], thresholds[1:], [1.0]])
    return values[np.searchsorted(thresholds, img, side="left")]


def quantization_batch(x: torch.Tensor, levels: float, gen: torch.Generator) -> torch.Tensor:
    """``quantization`` for a (B, 3, H, W) batch: per-image thresholds.

    The histogram is built on the device; the 256-bin dynamic programme runs in NumPy on the
    CPU (a few ms per image); the quantisation itself runs on the device.
    """
    del gen
    n = _count(levels, "levels", 1, HIST_BINS - 1)
    b = x.shape[0]
    flat = x.reshape(b, -1)  # (B, 3HW)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    constant = hi <= lo
    span = torch.where(constant, torch.ones_like(hi), hi - lo)
    scaled = (flat - lo) / span * (HIST_BINS - 1)
    bins = torch.floor(scaled + 0.5 + _TIE_TOL).clamp_(0, HIST_BINS - 1).long()
    bins += torch.arange(b, device=x.device).view(b, 1) * HIST_BINS
    hist = torch.bincount(bins.flatten(), minlength=b * HIST_BINS).view(b, HIST_BINS)
    t_bins = torch.as_tensor(_otsu_thresholds(hist.cpu().numpy(), n), device=x.device)
    thresholds = lo + t_bins.to(x.dtype) / (HIST_BINS - 1) * span  # (B, n)
    values = torch.cat(
        [torch.zeros_like(lo), thresholds[:, 1:], torch.ones_like(lo)], dim=1
    )  # (B, n + 1)
    index = torch.searchsorted(thresholds.contiguous(), flat.contiguous(), right=False)
    out = values.gather(1, index)
    return torch.where(constant, flat, out).view_as(x)


# ---------------------------------------------------------------------------------------------
# 23. colour block (imcolorblock: insertShape 'FilledRectangle')
# ---------------------------------------------------------------------------------------------

BLOCK_SIZE = 32  # imcolorblock: patch_size = [32 32]


def _block_corners(h: int, w: int, draws):
    """0-based top-left corners of the blocks from uniform draws (..., 5) = (r, g, b, u, v).

    Reference: x = u * (w - 32), y = v * (h - 32) are 1-based corners; ``insertShape`` rounds
    them to pixels, so the block covers 1-based columns round(x) .. round(x) + 31 (clipped to
    the image: round(x) = 0 loses a column). 0-based start = round(x) - 1.
    """
    rnd = _round_torch if isinstance(draws, torch.Tensor) else _round_np
    col = rnd(draws[..., 3] * (w - BLOCK_SIZE)) - 1
    row = rnd(draws[..., 4] * (h - BLOCK_SIZE)) - 1
    return row, col


def color_block(img: np.ndarray, blocks: float, rng: np.random.Generator) -> np.ndarray:
    """``imcolorblock(I, pnum)``: paint ``pnum`` opaque 32x32 squares of uniform random colour."""
    n = _count(blocks, "blocks")
    h, w, _ = img.shape
    draws = rng.random((n, 5))  # per block: colour rand(1, 3), then x, then y
    rows, cols = (v.astype(np.intp) for v in _block_corners(h, w, draws))
    out = np.array(img, dtype=np.float64, copy=True)
    for k in range(n):
        r0, c0 = max(rows[k], 0), max(cols[k], 0)
        r1, c1 = min(rows[k] + BLOCK_SIZE, h), min(cols[k] + BLOCK_SIZE, w)
        out[r0:r1, c0:c1] = draws[k, :3]
    return out


def color_block_batch(x: torch.Tensor, blocks: float, gen: torch.Generator) -> torch.Tensor:
    """``color_block`` for a (B, 3, H, W) batch: per-image colours and positions."""
    n = _count(blocks, "blocks")
    b, _, h, w = x.shape
    draws = torch.rand((b, n, 5), generator=gen, device=x.device, dtype=torch.float64)
    rows, cols = (v.long() for v in _block_corners(h, w, draws))  # (B, n)
    colours = draws[..., :3].to(x.dtype)  # (B, n, 3)
    ar_h = torch.arange(h, device=x.device).view(1, h)
    ar_w = torch.arange(w, device=x.device).view(1, w)
    out = x.clone()
    for k in range(n):
        in_rows = (ar_h >= rows[:, k : k + 1]) & (ar_h < rows[:, k : k + 1] + BLOCK_SIZE)
        in_cols = (ar_w >= cols[:, k : k + 1]) & (ar_w < cols[:, k : k + 1] + BLOCK_SIZE)
        mask = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # (B, 1, H, W)
        out = torch.where(mask, colours[:, k].view(b, 3, 1, 1), out)
    return out


IMPLEMENTATIONS: dict[str, Implementation] = {
    "jitter": Implementation(single=jitter, batch=jitter_batch, stochastic=True),
    "non_eccentricity_patch": Implementation(
        single=non_eccentricity_patch, batch=non_eccentricity_patch_batch, stochastic=True
    ),
    "pixelate": Implementation(single=pixelate, batch=pixelate_batch, stochastic=False),
    "quantization": Implementation(single=quantization, batch=quantization_batch, stochastic=False),
    "color_block": Implementation(single=color_block, batch=color_block_batch, stochastic=True),
}
