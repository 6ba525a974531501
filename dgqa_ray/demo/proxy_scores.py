"""Full-reference quality *proxies* for the embedded default: MS-SSIM against the pristine tile.

No subjective scores exist for images this project synthesizes, so the embedded default labels
them with a full-reference metric computed against the pristine tile they were made from. These
numbers are **proxies, not subjective scores** (no observer rated anything); wherever they are
stored the name says so (``proxy_ms_ssim`` in the target's table, ``embedded_pools.json`` and
``pool.json`` next to every pool), and ingestion carries them in the ``mos`` column because that
is the column the schema has for "the score as published".

The metric is MS-SSIM (Wang, Simoncelli & Bovik 2003) as implemented by ``piq``
(``piq.multi_scale_ssim``), a maintained PyTorch metric library:

- Scale: [0, 1], higher is better, 1 for an image identical to its reference. piq clamps each
  scale's term at 0 before the weighted product, so it never goes negative.
- Colour: computed on each RGB channel and averaged over the channels (piq's convention; the
  original is computed on luminance), so colour-only distortions lower it a little instead of
  not at all.
- Scales: the 11x11 Gaussian window (sigma 1.5) needs ``10 * 2**(s-1) + 1`` pixels on the
  shorter side for ``s`` scales. The standard five scales need 161 pixels; smaller tiles use as
  many scales as fit (96 x 128 tiles: four), with the first weights of the paper
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) renormalised by piq. The dropped scales are the
  coarsest ones, which a 96-pixel tile cannot hold anyway.

Why MS-SSIM and not VIF: on the embedded tiles (96 x 128, 25 types x 5 levels, 18 tiles from
the six photos) both order the levels sensibly -- level 5 scores below level 1 for 23 of 25
types with MS-SSIM and 24 with pixel-domain VIF (``piq.vif_p``); the exceptions are mean shift
(18), whose level 3 is the identity and whose levels 1 and 5 are equal and opposite shifts,
and contrast change (25), whose level 1 *raises* contrast, which MS-SSIM penalises more than
level 5's reduction. But VIF is unbounded above: 20% of the images scored above 1 (the
generator min-max stretches every output) and flat sky tiles reached 8.4, outliers that would
squash the [0, 10] min-max normalisation of every other label. MS-SSIM stays in [0, 1]. It is
also cheaper (about 6.5 vs 11 ms per 96 x 128 image on 2 cores). scikit-image's SSIM ranked
about as well (23 types) but is single-scale and not batched.

Nothing here imports Ray: a batch of arrays in, a numpy array of proxies out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

PROXY_NAME = "ms_ssim"
"""What the proxy is, for manifests and reports."""
PROXY_COLUMN = "proxy_ms_ssim"
"""Column name of the proxy in the tables this project writes."""
PROXY_SCALE = "MS-SSIM full-reference proxy in [0, 1], higher is better (1 = identical)"
"""The proxy's scale, in words (docs, manifests, MLflow)."""
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang et al. (2003), finest scale first."""
KERNEL_SIZE = 11
KERNEL_SIGMA = 1.5
DEFAULT_BATCH = 64
"""Images per piq call: 64 x 3 x 96 x 128 float32 is 9 MB per tensor, and batches beyond this
were no faster per image on 2 cores."""


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image of ``height`` x ``width`` (at most 5)."""
    side = min(int(height), int(width))
    scales = 0
    for s in range(1, len(MS_SSIM_WEIGHTS) + 1):
        if side >= (KERNEL_SIZE - 1) * 2 ** (s - 1) + 1:
            scales = s
    if scales == 0:
        raise ValueError(
            f"image size: {height}x{width} is too small for MS-SSIM's {KERNEL_SIZE}x{KERNEL_SIZE}"
            f" window; expected both sides >= {KERNEL_SIZE}"
        )
    return scales


@dataclass(frozen=True)
class ProxySpec:
    """How proxies of one image size are computed (stored next to the scores)."""

    name: str
    library: str
    library_version: str
    scales: int
    weights: tuple[float, ...]  # renormalised to sum to 1, finest scale first
    kernel_size: int
    kernel_sigma: float
    scale: str
    note: str = "full-reference proxy of quality, not a subjective score"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["weights"] = list(self.weights)
        return out


def proxy_spec(height: int, width: int) -> ProxySpec:
    """The proxy's settings for images of ``height`` x ``width``."""
    import piq

    scales = ms_ssim_scales(height, width)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], dtype=np.float64)
    weights = weights / weights.sum()
    return ProxySpec(
        name=PROXY_NAME,
        library="piq",
        library_version=str(piq.__version__),
        scales=scales,
        weights=tuple(round(float(w), 6) for w in weights),
        kernel_size=KERNEL_SIZE,
        kernel_sigma=KERNEL_SIGMA,
        scale=PROXY_SCALE,
    )


def _as_batch(images: np.ndarray | Sequence[np.ndarray], what: str) -> np.ndarray:
    """(N, H, W, 3) uint8 from an array or a list of (H, W, 3) uint8 arrays."""
    if isinstance(images, np.ndarray):
        batch = images
    else:
        items = list(images)
        if not items:
            raise ValueError(f"{what}: expected at least one image, got none")
        shapes = {np.shape(a) for a in items}
        if len(shapes) != 1:
            raise ValueError(f"{what}: expected images of one size, got shapes {sorted(shapes)}")
        batch = np.stack([np.asarray(a) for a in items])
    if batch.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8, got {batch.dtype}")
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"{what}: expected (N, H, W, 3) or (H, W, 3) RGB, got {batch.shape}")
    return batch


def _to_tensor(batch: np.ndarray) -> torch.Tensor:
    # (N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1], piq's expected input.
    # torch.tensor copies (the uint8 batch, a quarter of the float32 one): the batch may be a
    # read-only array, whose memory torch must not share.
    return torch.tensor(batch).permute(0, 3, 1, 2).float().div_(255.0)


@torch.inference_mode()
def proxy_scores(
    distorted: np.ndarray | Sequence[np.ndarray],
    reference: np.ndarray | Sequence[np.ndarray],
    *,
    batch_size: int = DEFAULT_BATCH,
) -> np.ndarray:
    """MS-SSIM proxy of each distorted image against its pristine reference.

    Args:
        distorted: (N, H, W, 3) uint8 RGB, or a list of (H, W, 3) uint8 arrays.
        reference: (H, W, 3) uint8 (the reference of every image) or (N, H, W, 3), one each.
        batch_size: images per metric call.

    Returns:
        (N,) float64 in [0, 1], higher is better; see the module doc for the settings.
    """
    import piq

    dist = _as_batch(distorted, "distorted")
    ref = _as_batch(reference, "reference")
    if ref.shape[1:] != dist.shape[1:]:
        raise ValueError(
            f"reference: expected the distorted images' size {dist.shape[1:]}, got {ref.shape[1:]}"
        )
    if ref.shape[0] not in (1, dist.shape[0]):
        raise ValueError(
            f"reference: expected 1 or {dist.shape[0]} images (one per distorted image), "
            f"got {ref.shape[0]}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    height, width = dist.shape[1:3]
    scales = ms_ssim_scales(height, width)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float32)
    out = np.empty(dist.shape[0], dtype=np.float64)
    for start in range(0, dist.shape[0], batch_size):
        stop = min(start + batch_size, dist.shape[0])
        x = _to_tensor(dist[start:stop])  # (B, 3, H, W)
        y = _to_tensor(ref if ref.shape[0] == 1 else ref[start:stop]).expand_as(x)
        values = piq.multi_scale_ssim(
            x,
            y,
            kernel_size=KERNEL_SIZE,
            kernel_sigma=KERNEL_SIGMA,
            data_range=1.0,
            reduction="none",
            scale_weights=weights,
        )  # (B,)
        out[start:stop] = values.double().numpy()
    # piq's relu keeps values >= 0; float32 products can overshoot 1 by an ulp.
    return np.clip(out, 0.0, 1.0)
