"""Distortion throughput: the single-image NumPy path against the batched torch path.

For every KADID type, at each image size, all five levels are timed on the same images:
- ``single``: ``distortions.apply`` image by image (NumPy, float64), the reference-like path;
- ``batch_cpu``: ``distortions.apply_batch`` on (B, 3, H, W) uint8 tensors on the CPU;
- ``batch_cuda``: the same on the GPU, when one is present.
All on ``threads`` CPU threads (1 by default: the per-core figure). The summary line gives the
time for the 120 non-denoise variants (24 types x 5 levels) of one 256x256 image, the figure the
reference generator is compared with (about 4.8 s for 115 of them under Octave on 2 cores).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dgqa_ray.distortions import DISTORTIONS, apply, apply_batch

log = logging.getLogger(__name__)


@dataclass
class DistortionTiming:
    dist_type: int
    name: str
    size: str  # "WxH"
    single_img_s: float
    batch_cpu_img_s: float
    batch_cuda_img_s: float | None

    @property
    def batch_speedup(self) -> float:
        return self.batch_cpu_img_s / self.single_img_s


def _photo(width: int, height: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    out = resize(data.coffee(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _time_single(image: np.ndarray, dist_type: int, repeats: int) -> float:
    apply(image, dist_type, 1, seed=0)  # warm caches (kernels, splines)
    start = time.perf_counter()
    for r in range(repeats):
        for level in range(1, 6):
            apply(image, dist_type, level, seed=r)
    return repeats * 5 / (time.perf_counter() - start)


def _time_batch(batch: torch.Tensor, dist_type: int, repeats: int) -> float:
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    apply_batch(batch, dist_type, 1, seed=0)
    sync()
    start = time.perf_counter()
    for r in range(repeats):
        for level in range(1, 6):
            apply_batch(batch, dist_type, level, seed=r)
    sync()
    return repeats * 5 * batch.shape[0] / (time.perf_counter() - start)


def run_distortion_benchmark(
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (512, 384)),
    batch_size: int = 16,
    repeats: int = 2,
    threads: int = 1,
    types: list[int] | None = None,
    out_csv: str | Path | None = None,
) -> list[DistortionTiming]:
    """Time every type at every size; print a table; write ``out_csv`` when given."""
    torch.set_num_threads(threads)
    use_cuda = torch.cuda.is_available()
    chosen = [d for d in DISTORTIONS if types is None or d.dist_type in types]
    rows: list[DistortionTiming] = []
    log.info(
        f"distortion benchmark: {threads} CPU thread(s), batch {batch_size}, "
        f"{'CUDA: ' + torch.cuda.get_device_name() if use_cuda else 'no CUDA'}"
    )
    header = (
        f"{'type':>4} {'name':<28} {'size':>8} {'single img/s':>13} {'batch img/s':>12} {'x':>6}"
    )
    header += f" {'cuda img/s':>11}" if use_cuda else ""
    for width, height in sizes:
        image = _photo(width, height)
        batch = torch.from_numpy(np.repeat(image[None], batch_size, 0)).permute(0, 3, 1, 2)
        batch = batch.contiguous()
        log.info(header)
        for dist in chosen:
            # The denoiser costs ~100x the rest: time it once per level.
            reps = 1 if dist.dist_type == 15 else repeats
            single = _time_single(image, dist.dist_type, reps)
            small = batch[:2] if dist.dist_type == 15 else batch
            batched = _time_batch(small, dist.dist_type, reps)
            cuda = _time_batch(small.cuda(), dist.dist_type, reps) if use_cuda else None
            row = DistortionTiming(
                dist.dist_type, dist.name, f"{width}x{height}", single, batched, cuda
            )
            rows.append(row)
            line = (
                f"{dist.dist_type:>4} {dist.name:<28} {row.size:>8} {single:>13.1f} "
                f"{batched:>12.1f} {row.batch_speedup:>6.2f}"
            )
            log.info(line + (f" {cuda:>11.1f}" if cuda is not None else ""))
        _summarise([r for r in rows if r.size == f"{width}x{height}"])
    if out_csv is not None:
        from dgqa_ray.benchmarks.data import write_rows_csv

        log.info(f"wrote {write_rows_csv(rows, out_csv)}")
    return rows


def _summarise(rows: list[DistortionTiming]) -> None:
    """Seconds for the 5 levels of every timed type but denoise, for one image, per path."""
    rest = [r for r in rows if r.dist_type != 15]
    if not rest:
        return
    single_s = sum(5 / r.single_img_s for r in rest)
    batch_s = sum(5 / r.batch_cpu_img_s for r in rest)
    n = 5 * len(rest)
    log.info(
        f"{rows[0].size}: {n} variants (all but denoise) of one image: single path "
        f"{single_s:.3f} s, batched CPU path {batch_s:.3f} s per image "
        f"(ratio {single_s / batch_s:.2f}x)"
    )
    cuda = [r for r in rest if r.batch_cuda_img_s]
    if cuda:
        cuda_s = sum(5 / r.batch_cuda_img_s for r in cuda)
        # KADIS-700k: 140,000 references x 5 levels, one type each, uniform over types.
        per_image = cuda_s / n
        log.info(
            f"{rows[0].size}: batched CUDA path {cuda_s:.4f} s per image for {n} variants; "
            f"700,000 KADIS-style images at this size would take {700_000 * per_image / 3600:.2f} h "
            "(array-math types on the GPU; codec types run on the CPU)"
        )
