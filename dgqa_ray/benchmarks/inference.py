"""Inference throughput: the project's actor-pool predictor vs a plain torch loop.

    python jobs/benchmark.py inference                          # resnet18, 224 crops, 5 per image
    python jobs/benchmark.py inference --images 256 --crop 64 --rounds 2

One run, the same regressor weights, the same images (512x384 JPEGs), the same seeded crops
(``num_crops`` per image, as ``data.pipelines.evaluation_view`` cuts them), the same batch
size and the same cores:

- *plain torch, decode + forward*: this process decodes each image, cuts its crops and runs
  ``engine.predict`` batch by batch, with torch using every core: what a user would write by
  hand. The baseline the ratio is taken against.
- *plain torch, forward only*: the same forward passes over crops decoded beforehand: the
  ceiling, with no decoding at all.
- *actor pool*: ``inference.predict_quality`` as the pipeline and ``jobs/score.py`` run it (Ray
  Data reads and decodes, one ``Predictor`` actor holding the model, per-image averaging on the
  driver), timed end to end per call: the actor's start and model load are included.
- *actor pool, past its start*: the rate beyond the fixed start of a call, from the same
  round's full call minus a call over ``STARTUP_IMAGES`` images. The fixed start (a fresh actor
  process importing torch and torchvision, about 5 s of it on 2 cores, then the model) is
  paid once per call, whatever its size; the benchmark prints the call size from which the
  end-to-end rate reaches 0.8x of the plain loop.

On CPU, Ray gets ``cores + 1`` logical CPUs, as ``train.init_ray_for_training`` gives it, and
the actor reserves ``cores`` of them (its torch threads), as ``pipeline.inference_options``
does with ``train.cpus_per_worker: 0`` derived on that cluster: one logical CPU stays for Ray
Data's reads, which decode next to the forward passes on the same cores. On CUDA
both sides run bf16 autocast with channels_last, the actor holding the GPU.

The paths alternate for ``rounds`` rounds, so that load changes fall on all of them alike; the
ratios are medians over rounds of each round's rates. The predicted scores of the actor pool
and of the plain loop are compared too (they must agree: same weights, same crops).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgqa_ray.benchmarks.data import describe_machine, make_jpegs, write_rows_csv
from dgqa_ray.ray_session import init_ray

POOL = "actor pool (predict_quality)"
POOL_RUNNING = "actor pool, past its start"
STARTUP_IMAGES = 8


def break_even(startup: float, running: float, plain: float, ratio: float = 0.8) -> float:
    """Images per call from which ``start + n / running`` takes at most ``n / (ratio * plain)``
    seconds (the actor pool reaches ``ratio`` of the plain loop's rate end to end)."""
    slack = 1.0 / (ratio * plain) - 1.0 / running
    return float("inf") if slack <= 0 else startup / slack


@dataclass
class InferenceRow:
    path: str
    images_per_second: float
    crops_per_second: float
    ratio: float  # over plain torch decode + forward (median over rounds)


def _model(backbone: str, seed: int = 0):
    import torch

    from dgqa_ray.config import load_config
    from dgqa_ray.models import create_regressor

    cfg = load_config("demo", [f"model.backbone={backbone}"])
    torch.manual_seed(seed)
    return cfg.model, create_regressor(cfg.model, load_weights=False).eval()


def _crops(data: list[bytes], ids: list[str], crop: int, num_crops: int) -> np.ndarray:
    """(N * num_crops, 3, crop, crop) uint8: the crops ``evaluation_view`` cuts (seed 0)."""
    from dgqa_ray.data.pipelines import decode_image, image_rng, random_crop

    out = np.empty((len(data) * num_crops, 3, crop, crop), dtype=np.uint8)
    for i, (raw, image_id) in enumerate(zip(data, ids, strict=True)):
        chw = decode_image(raw)
        rng = image_rng(0, image_id)
        for k in range(num_crops):
            out[i * num_crops + k] = random_crop(chw, crop, rng, flip=False)
    return out


def _plain(model, device, data, ids, crop, num_crops, batch_size, amp, channels_last, crops=None):
    """Per-image mean scores of the plain loop, and the seconds it took."""
    from dgqa_ray.engine import predict

    started = time.perf_counter()
    images_per_batch = max(1, batch_size // num_crops)
    outputs = []
    for start in range(0, len(data), images_per_batch):
        part = slice(start, start + images_per_batch)
        batch_crops = (
            crops[part.start * num_crops : part.stop * num_crops]
            if crops is not None
            else _crops(data[part], ids[part], crop, num_crops)
        )
        batch_ids = np.repeat(np.asarray(ids[part], dtype=object), num_crops)
        _, out = predict(
            model,
            [{"image": batch_crops, "image_id": batch_ids}],
            device,
            amp_dtype=amp,
            channels_last=channels_last,
        )
        outputs.append(np.asarray(out, dtype=np.float64).reshape(-1, num_crops).mean(axis=1))
    return np.concatenate(outputs), time.perf_counter() - started


def run(
    images: int, crop: int, num_crops: int, batch_size: int, rounds: int, backbone: str
) -> list[InferenceRow]:
    import ray
    import ray.data
    import torch

    from dgqa_ray.inference import predict_quality
    from dgqa_ray.models import numeric_format, prepare_for_device

    if images <= STARTUP_IMAGES:
        raise ValueError(
            f"images: expected more than {STARTUP_IMAGES} (the running rate is what a call "
            f"over them costs beyond a {STARTUP_IMAGES}-image call), got {images}"
        )
    cores = os.cpu_count() or 1
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    model_cfg, network = _model(backbone)
    amp, channels_last = numeric_format(model_cfg, device)
    model = prepare_for_device(network, device, channels_last).eval()
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    torch.set_num_threads(cores)
    with tempfile.TemporaryDirectory(prefix="dgqa-bench-inference-") as folder:
        paths = make_jpegs(folder, images)
        data = [open(p, "rb").read() for p in paths]  # noqa: SIM115 - tiny files, read once
    ids = [f"img{i:06d}" for i in range(images)]
    rows = [
        {"image": raw, "image_id": image_id, "score": float("nan"), "dist_type": -1}
        for raw, image_id in zip(data, ids, strict=True)
    ]
    init_ray(cores + 1, include_dashboard=False, log_to_driver=False)
    resources = {"num_cpus": 1, "num_gpus": 1} if gpu else {"num_cpus": cores}
    print(
        f"inference: {images} images x {num_crops} crops of {crop} px, {backbone} regressor, "
        f"batch {batch_size} crops, {describe_machine(cores)}, "
        f"{'CUDA bf16 + channels_last' if gpu else 'CPU ' + ('bf16' if amp else 'float32')}; "
        f"actor: {resources}"
    )
    # Warm-ups, not timed: oneDNN picks kernels, Ray starts its workers.
    _plain(model, device, data[:4], ids[:4], crop, num_crops, batch_size, amp, channels_last)
    small = STARTUP_IMAGES

    def pooled_call(count: int) -> tuple[pd.DataFrame, float]:
        started = time.perf_counter()
        out = predict_quality(
            state,
            model_cfg,
            ray.data.from_items(rows[:count]),
            crop=crop,
            num_crops=num_crops,
            batch_size=batch_size,
            **resources,
        )
        return out, time.perf_counter() - started

    pooled_call(small)
    decoded = _crops(data, ids, crop, num_crops)
    rates: dict[str, list[float]] = {"plain decode+forward": [], "plain forward only": []}
    rates[POOL] = []
    rates[POOL_RUNNING] = []
    startups: list[float] = []
    largest_difference = 0.0
    for round_index in range(rounds):
        plain, seconds = _plain(
            model, device, data, ids, crop, num_crops, batch_size, amp, channels_last
        )
        rates["plain decode+forward"].append(images / seconds)
        _, seconds = _plain(
            model, device, data, ids, crop, num_crops, batch_size, amp, channels_last, decoded
        )
        rates["plain forward only"].append(images / seconds)
        pooled, seconds = pooled_call(images)
        rates[POOL].append(images / seconds)
        # A call over a few images costs the fixed start (actor process, torch import, model
        # load, Ray Data's plan) plus little else; what the full call costs beyond it is the
        # running rate.
        _, small_seconds = pooled_call(small)
        extra = seconds - small_seconds
        rates[POOL_RUNNING].append((images - small) / extra if extra > 0 else float("nan"))
        startups.append(small_seconds - small / rates[POOL_RUNNING][-1])
        order = np.argsort(ids)
        difference = np.abs(pooled["predicted"].to_numpy() - plain[order]).max()
        largest_difference = max(largest_difference, float(difference))
        print(
            f"  round {round_index + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rates.items())
        )
    baseline = np.asarray(rates["plain decode+forward"])
    table = []
    for name, values in rates.items():
        median = float(np.median(values))
        ratio = float(np.median(np.asarray(values) / baseline))
        table.append(InferenceRow(name, median, median * num_crops, ratio))
    print(f"\n{'path':<30} {'img/s':>8} {'crops/s':>9} {'ratio':>7}")
    for row in table:
        print(
            f"{row.path:<30} {row.images_per_second:>8.1f} {row.crops_per_second:>9.1f} "
            f"{row.ratio:>6.2f}x"
        )
    startup = float(np.median(startups))
    running = float(np.median(rates[POOL_RUNNING]))
    plain_rate = float(np.median(baseline))
    if not np.isfinite(running):
        print(
            f"\nactor pool: no running rate (the full calls took no longer than {small}-image ones)"
        )
    else:
        print(
            f"\nactor pool: {startup:.1f} s fixed start per call (from a {small}-image call), "
            f"then {running:.1f} img/s; end to end it reaches 0.8x of the plain loop from "
            + (
                f"about {break_even(startup, running, plain_rate):,.0f} images per call"
                if running > 0.8 * plain_rate
                else "no call size (its running rate is below 0.8x)"
            )
        )
    print(
        f"largest difference between the actor pool's and the plain loop's scores: "
        f"{largest_difference:.2e} (same weights, same crops)"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark.py inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--crop", type=int, default=224, help="pixels (default: %(default)s)")
    parser.add_argument("--crops", type=int, default=5, help="per image (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="crops (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument("--backbone", default="resnet18", help="(default: %(default)s)")
    parser.add_argument(
        "--out",
        default="dgqa_output/benchmarks/inference.csv",
        help="CSV path (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    for name in ("images", "crop", "crops", "batch_size", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer")
    if args.images <= STARTUP_IMAGES:
        parser.error(
            f"--images: expected more than {STARTUP_IMAGES} (the running rate is measured "
            f"against a {STARTUP_IMAGES}-image call)"
        )
    table = run(args.images, args.crop, args.crops, args.batch_size, args.rounds, args.backbone)
    print(f"wrote {write_rows_csv(table, args.out)}")
    return 0
