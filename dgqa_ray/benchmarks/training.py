"""Training benchmark: regressor images/s through Ray Train + Ray Data vs a plain torch loop.

One run, same model, batch, crop and cores (docs/design.md section 2):

- *plain torch*: this process, the crops already decoded in memory (on the GPU when there is
  one), ``engine.train_one_epoch`` over shuffled batches. The ceiling: no data loading at all.
- *Ray Train + Ray Data*: ``dgqa_ray.train.fit_regressor`` exactly as the pipeline runs it (one
  Train worker, the training view decoding 512x384 JPEG shards in Ray Data tasks, a validation
  pass and a checkpoint after every epoch). Its rate is the training loop's own (time waiting
  for batches included; validation and checkpointing not, they are shown separately).

The two alternate, one epoch each, for ``rounds`` rounds: a plain epoch, then one more epoch of
the Ray run (a rerun with the same run name resumes from the last checkpoint, so each round's
Ray epoch is trained by a fresh worker). The ratio is the median over rounds of the Ray epoch's
rate over the plain epoch's just before it, so background load that comes and goes falls on
both sides alike. A fresh worker pays its process warm-up in its first batch, which a long run
pays once: the ratio is slightly pessimistic for Ray. Warm-ups (a few plain batches, one Ray
epoch) are not timed.

Settings: on CPU, resnet18, 224 crops, batch 32, fp32, one worker with all cores (torch threads
= cores; Ray gets one more logical CPU so decoding tasks can run next to the worker). On CUDA,
ResNet-50, bf16 autocast, channels_last, batch 256, one GPU worker with 2 CPUs, the other cores
decoding. Peak memory: this process's RSS during the plain epochs (sampled every 0.25 s), and the
proportional set size (PSS, shared pages counted once) summed over this process and every Ray
process it started during the Ray epochs (every 3 s: reading PSS costs CPU).

Entry points: :func:`run_training_benchmark`; :func:`main` (``jobs/benchmark.py training``)::

    python -c "from dgqa_ray.benchmarks.training import main; main([])"
    python jobs/benchmark.py training --images 1024 --crop 96 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dgqa_ray.benchmarks.data import IMAGE_SIZE, describe_machine, make_jpegs, write_rows_csv
from dgqa_ray.ray_session import init_ray

log = logging.getLogger(__name__)

UNIQUE_JPEGS = 1024
"""Distinct photos generated; more images are byte copies of these (decoding costs the same,
and generating 16k JPEGs would take minutes)."""
VAL_IMAGES = 32
"""Validation images per epoch of the Ray run (validation is not part of the timed rate)."""


@dataclass
class TrainBenchRow:
    """One line of the result table."""

    pipeline: str
    images: int
    seconds: float
    images_per_s: float
    ratio: float | None  # vs the plain loop's mean images/s
    peak_memory_gb: float | None
    note: str = ""


@dataclass(frozen=True)
class BenchSettings:
    """What both sides train with."""

    device: str  # "cpu" or "cuda"
    backbone: str
    crop: int
    batch_size: int
    cores: int
    amp: str  # "bf16" or "none"
    channels_last: bool

    def describe(self) -> str:
        w, h = IMAGE_SIZE
        dtype = "bf16 autocast" if self.device == "cuda" and self.amp == "bf16" else "fp32"
        layout = ", channels_last" if self.device == "cuda" and self.channels_last else ""
        return (
            f"{self.backbone} regressor, {self.crop}x{self.crop} crops of {w}x{h} JPEGs, "
            f"batch {self.batch_size}, {self.device}, {dtype}{layout}, {self.cores} cores"
        )


# -- memory -----------------------------------------------------------------------------------


def _psutil():
    """psutil as bundled with Ray (``ray/thirdparty_files``, on sys.path once ray is imported)."""
    import importlib

    import ray  # noqa: F401

    return importlib.import_module("psutil")


class PeakMemory:
    """Samples memory in a thread: this process's RSS every ``interval_s``, and, with ``tree``,
    the PSS (RSS where PSS is unreadable) summed over this process and all its descendants (the
    Ray processes it started) every ``tree_interval_s``.

    PSS counts shared pages once (torch's libraries are mapped by every Ray worker), but reading
    it walks each process's page tables: ~5 ms per process, so it is sampled rarely, or the
    sampler itself would take a visible share of a 2-core machine.
    """

    def __init__(
        self, interval_s: float = 0.25, tree: bool = True, tree_interval_s: float = 3.0
    ) -> None:
        self.interval_s = interval_s
        self.tree = tree
        self.tree_interval_s = tree_interval_s
        self.peak_self_rss = 0
        self.peak_tree = 0
        self.tree_metric = "PSS"
        self.loads: list[float] = []  # 1-minute load average at each tree sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tree_bytes(self, me) -> int:
        psutil = _psutil()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                self.tree_metric = "RSS"
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            except psutil.Error:  # exited meanwhile
                pass
        return total

    def _run(self) -> None:
        me = _psutil().Process()
        last_tree = time.monotonic()
        while not self._stop.wait(self.interval_s):
            self.peak_self_rss = max(self.peak_self_rss, me.memory_info().rss)
            if self.tree and time.monotonic() - last_tree >= self.tree_interval_s:
                self.sample(me)
                last_tree = time.monotonic()

    def sample(self, me=None) -> None:
        """One full sample (RSS, load and, with ``tree``, the tree's PSS)."""
        me = me or _psutil().Process()
        self.loads.append(os.getloadavg()[0])
        self.peak_self_rss = max(self.peak_self_rss, me.memory_info().rss)
        if self.tree:
            self.peak_tree = max(self.peak_tree, self._tree_bytes(me))

    @property
    def mean_load(self) -> float:
        """Mean 1-minute load average over the samples: far above the cores used means other
        processes took CPU time, and the rates measured meanwhile are not comparable."""
        return float(np.mean(self.loads)) if self.loads else float("nan")

    def __enter__(self) -> PeakMemory:
        self._stop.clear()  # re-entrant: peaks accumulate over every phase it was entered for
        self.sample()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def _gb(n: int) -> float:
    return n / 1024**3


# -- data -------------------------------------------------------------------------------------


def make_images(folder: str, count: int, seed: int = 0) -> list[str]:
    """``count`` 512x384 JPEG files: ``UNIQUE_JPEGS`` distinct ones, then byte copies."""
    unique = make_jpegs(os.path.join(folder, "unique"), min(count, UNIQUE_JPEGS), seed=seed)
    paths = list(unique)
    for i in range(len(unique), count):
        path = os.path.join(folder, f"copy{i:06d}.jpg")
        shutil.copyfile(unique[i % len(unique)], path)
        paths.append(path)
    return paths


def _in_memory_crops(paths: list[str], crop: int, seed: int, threads: int):
    """Every image decoded once and cropped once: (N, 3, crop, crop) uint8. Threads: the
    decoders release the GIL, and 16k images on one core would take a minute."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from dgqa_ray.data.pipelines import decode_image, image_rng, random_crop

    images = np.empty((len(paths), 3, crop, crop), dtype=np.uint8)

    def load(i: int) -> None:
        with open(paths[i], "rb") as f:
            images[i] = random_crop(decode_image(f.read()), crop, image_rng(seed, i), flip=True)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(load, range(len(paths))))
    return torch.from_numpy(images)


# -- the plain loop ---------------------------------------------------------------------------


def _plain_batches(images, scores, batch_size: int, generator) -> Iterator[dict]:
    import torch

    order = torch.randperm(images.shape[0], generator=generator).to(images.device)
    for start in range(0, images.shape[0], batch_size):
        idx = order[start : start + batch_size]
        yield {"image": images[idx], "score": scores[idx]}  # (B, 3, crop, crop) uint8, (B,)


class PlainTorchLoop:
    """The baseline: one model trained in this process over crops already in memory."""

    def __init__(self, images, scores, settings: BenchSettings, seed: int) -> None:
        import torch

        from dgqa_ray.config import ModelConfig, TrainConfig
        from dgqa_ray.engine import create_loss, create_optimizer, seed_everything
        from dgqa_ray.models import autocast_dtype, create_regressor, prepare_for_device

        self.images, self.scores, self.settings = images, scores, settings
        self.device = torch.device(settings.device)
        model_cfg = ModelConfig(
            backbone=settings.backbone, amp=settings.amp, channels_last=settings.channels_last
        )
        self.channels_last = settings.channels_last and self.device.type == "cuda"
        seed_everything(seed)
        self.model = prepare_for_device(
            create_regressor(model_cfg), self.device, self.channels_last
        )
        self.optimizer = create_optimizer(
            TrainConfig(use_gpu=self.device.type == "cuda"), self.model
        )
        self.loss_fn = create_loss("regressor")
        self.amp = autocast_dtype(model_cfg, self.device)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch(max_batches=3)  # warm-up: allocator, cuDNN algorithm choice, thread pools

    def epoch(self, max_batches: int | None = None) -> tuple[float, float]:
        """One pass over the crops in a new order: (images, seconds)."""
        from dgqa_ray.engine import train_one_epoch

        stats = train_one_epoch(
            self.model,
            _plain_batches(self.images, self.scores, self.settings.batch_size, self.generator),
            self.optimizer,
            self.loss_fn,
            self.device,
            task="regressor",
            amp_dtype=self.amp,
            channels_last=self.channels_last,
            max_batches=max_batches,
        )
        return stats["images"], stats["seconds"]


# -- the run ----------------------------------------------------------------------------------


def default_settings(device: str = "auto", cores: int | None = None) -> BenchSettings:
    """resnet18/32/fp32 on CPU; ResNet-50/256/bf16 on CUDA (docs/design.md section 2)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: invalid value {device!r}; allowed: auto, cpu, cuda")
    cores = cores or os.cpu_count() or 1
    if device == "cuda":
        return BenchSettings("cuda", "resnet50", 224, 256, cores, "bf16", True)
    return BenchSettings("cpu", "resnet18", 224, 32, cores, "none", False)


def _ray_config(settings: BenchSettings, epochs: int, storage_uri: str):
    from dgqa_ray.config import PipelineConfig

    on_gpu = settings.device == "cuda"
    return PipelineConfig.from_dict(
        {
            "run_name": "bench",
            "storage": storage_uri,
            "data": {"crop_size": settings.crop, "eval_crops": 1},
            "model": {
                "backbone": settings.backbone,
                "amp": settings.amp,
                "channels_last": settings.channels_last,
            },
            "train": {
                "batch_size": settings.batch_size,
                "eval_batch_size": settings.batch_size,
                "epochs": epochs,
                "num_workers": 1,
                "use_gpu": on_gpu,
                # GPU: the worker only feeds the device, the other cores decode. CPU: the worker
                # computes with every core (decoding tasks share them).
                "cpus_per_worker": 2 if on_gpu else settings.cores,
                "max_failures": 0,
            },
            "tracking": {"enabled": False},
        }
    )


def run_training_benchmark(
    num_images: int | None = None,
    *,
    device: str = "auto",
    backbone: str | None = None,
    crop: int | None = None,
    batch_size: int | None = None,
    rounds: int = 2,
    num_cpus: int | None = None,
    storage_uri: str | None = None,
    work_dir: str | None = None,
    seed: int = 0,
) -> list[TrainBenchRow]:
    """Run the benchmark, print the table and return its rows.

    Args:
        num_images: training images per epoch (default: 1536 on CPU, 16384 on CUDA). Each
            epoch starts with a wait for the local shuffle buffer (1024 decoded images, ~3 s on
            2 cores) that a real dataset amortises over thousands of images; much smaller
            epochs make it look larger than it is.
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
        backbone, crop, batch_size: override the device's defaults (``default_settings``).
        rounds: timed rounds; each is one plain epoch, then one Ray epoch.
        num_cpus: cores used (default: all); on CPU Ray gets one more logical CPU than this.
        storage_uri: where the JPEG shards and checkpoints go (default: ``work_dir/store``).
        work_dir: scratch folder (default: a temporary folder, deleted afterwards).

    Starts a local Ray if none is running in this process (and shuts it down afterwards).
    """
    import ray
    import torch

    from dgqa_ray.data.adapters import open_adapter
    from dgqa_ray.data.ingest import ingest
    from dgqa_ray.data.pipelines import read_dataset
    from dgqa_ray.train import fit_regressor

    settings = default_settings(device, num_cpus)
    if backbone or crop or batch_size:
        settings = BenchSettings(
            settings.device,
            backbone or settings.backbone,
            crop or settings.crop,
            batch_size or settings.batch_size,
            settings.cores,
            settings.amp,
            settings.channels_last,
        )
    if settings.crop > min(IMAGE_SIZE):
        raise ValueError(
            f"crop: expected <= {min(IMAGE_SIZE)} (images are {IMAGE_SIZE}), got {crop}"
        )
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    num_images = num_images or (16384 if settings.device == "cuda" else 1536)
    if num_images < settings.batch_size:
        raise ValueError(
            f"num_images: expected >= batch size {settings.batch_size}, got {num_images}"
        )

    owns_dir = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix="dgqa-trainbench-")
    storage_uri = storage_uri or os.path.join(work_dir, "store")
    started_ray = False
    threads_before = torch.get_num_threads()
    try:
        t0 = time.perf_counter()
        paths = make_images(os.path.join(work_dir, "jpeg"), num_images, seed=seed)
        scores = np.random.default_rng(seed).uniform(1.0, 5.0, num_images)
        table = os.path.join(work_dir, "index.csv")
        import pandas as pd

        pd.DataFrame({"path": paths, "score": scores}).to_csv(table, index=False)
        log.info(
            f"generated {num_images} JPEGs of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        if not ray.is_initialized():
            # CPU: the worker reserves every core and Ray Data one more logical CPU, on which
            # decoding shares the cores with training (measured: two decoding slots instead of
            # one shortened the epoch-start wait but cost as much in contention, 0.84x vs 0.88x).
            logical = settings.cores + (1 if settings.device == "cpu" else 0)
            init_ray(logical, include_dashboard=False, log_to_driver=False)
            started_ray = True
        ray.data.DataContext.get_current().enable_progress_bars = False
        adapter = open_adapter("custom", table, score_column="score", dataset_name="trainbench")
        ingested = ingest(adapter, storage_uri, force=True)
        log.info(
            f"ingested {ingested.row_count} rows into {ingested.shard_count} shard(s) at "
            f"{ingested.dataset_dir}"
        )

        # The plain loop's data: every image decoded and cropped once, in memory.
        images = _in_memory_crops(
            paths, settings.crop, seed, settings.cores
        )  # (N, 3, crop, crop) uint8
        labels = torch.from_numpy(scores.astype(np.float32))
        if settings.device == "cuda":
            images, labels = images.cuda(), labels.cuda()
        else:
            torch.set_num_threads(settings.cores)

        plain = PlainTorchLoop(images, labels, settings, seed)  # warms up too
        ds = read_dataset(storage_uri, "trainbench")
        datasets = {"train": ds, "val": ds.limit(VAL_IMAGES)}
        run_name = f"trainbench-{int(time.time())}"
        plain_memory, ray_memory = PeakMemory(tree=False), PeakMemory(tree=True)

        def ray_epochs(total: int) -> dict:
            """Train the Ray run up to ``total`` epochs (resuming); the last epoch's entry."""
            cfg = _ray_config(settings, total, storage_uri)
            with ray_memory:
                result = fit_regressor(cfg, datasets, run_name=run_name, storage_uri=storage_uri)
            return result.history[total - 1]

        ray_epochs(1)  # warm-up, untimed: worker and data pipeline start, first reads
        rows: list[TrainBenchRow] = []
        for r in range(1, rounds + 1):
            with plain_memory:
                plain_images, plain_seconds = plain.epoch()
            entry = ray_epochs(r + 1)  # one more epoch, by a fresh worker resuming the run
            plain_rate = plain_images / plain_seconds
            ray_rate = entry["train_images"] / entry["train_seconds"]
            log.info(
                f"round {r}: plain torch {plain_rate:.1f} img/s, Ray Train + Ray Data "
                f"{ray_rate:.1f} img/s ({ray_rate / plain_rate:.2f}x)"
            )
            rows.append(
                TrainBenchRow(
                    f"round {r}: plain torch, crops in memory",
                    int(plain_images),
                    plain_seconds,
                    plain_rate,
                    None,
                    None,
                    f"load avg {os.getloadavg()[0]:.1f}",
                )
            )
            rows.append(
                TrainBenchRow(
                    f"round {r}: Ray Train + Ray Data, JPEG shards",
                    int(entry["train_images"]),
                    entry["train_seconds"],
                    ray_rate,
                    ray_rate / plain_rate,
                    None,
                    f"waited {entry.get('train_data_wait_seconds', float('nan')):.1f} s for "
                    f"batches; epoch wall {entry['epoch_seconds']:.1f} s with validation",
                )
            )
        plain_rows = [r for r in rows if r.ratio is None]
        ray_rows = [r for r in rows if r.ratio is not None]
        rows.append(
            TrainBenchRow(
                "all rounds: plain torch",
                sum(r.images for r in plain_rows),
                sum(r.seconds for r in plain_rows),
                sum(r.images for r in plain_rows) / sum(r.seconds for r in plain_rows),
                None,
                _gb(plain_memory.peak_self_rss),
                "peak: this process's RSS",
            )
        )
        total_rate = sum(r.images for r in ray_rows) / sum(r.seconds for r in ray_rows)
        rows.append(
            TrainBenchRow(
                "all rounds: Ray Train + Ray Data",
                sum(r.images for r in ray_rows),
                sum(r.seconds for r in ray_rows),
                total_rate,
                float(np.median([r.ratio for r in ray_rows])),
                _gb(ray_memory.peak_tree),
                f"ratio: median of rounds; 1 worker x {_ray_config(settings, 1, storage_uri).train.cpus_per_worker} "
                f"CPU; peak: {ray_memory.tree_metric} of this process + its Ray processes",
            )
        )
        log.info(format_table(rows, settings))
        return rows
    finally:
        torch.set_num_threads(threads_before)
        if started_ray:
            ray.shutdown()
        if owns_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def format_table(rows: list[TrainBenchRow], settings: BenchSettings) -> str:
    """The printed table: each Ray epoch against the plain epoch just before it."""
    head = (
        f"{'pipeline':<45} {'images':>7} {'seconds':>8} {'img/s':>8} {'ratio':>6} "
        f"{'peak GB':>8}  note"
    )
    lines = [
        f"machine: {describe_machine(settings.cores)}",
        f"setting: {settings.describe()}",
        head,
        "-" * len(head),
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        memory = f"{r.peak_memory_gb:.2f}" if r.peak_memory_gb is not None else ""
        lines.append(
            f"{r.pipeline:<45} {r.images:>7} {r.seconds:>8.2f} {r.images_per_s:>8.1f} "
            f"{ratio:>6} {memory:>8}  {r.note}"
        )
    summary = rows[-1]
    lines.append(
        f"Ray Train + Ray Data vs plain torch: {summary.ratio:.2f}x (median of rounds; aim: "
        ">= 0.90x on CPU, 0.97x on GPU)"
    )
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobs/benchmark.py training",
        description="Regressor training images/s: Ray Train + Ray Data vs a plain torch loop.",
    )
    parser.add_argument(
        "--images", type=int, default=None, help="images per epoch (default: 1536 CPU, 16384 GPU)"
    )
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="(default: auto)"
    )
    parser.add_argument(
        "--backbone", default=None, help="resnet18/34/50 (default: resnet18 CPU, resnet50 GPU)"
    )
    parser.add_argument("--crop", type=int, default=None, help="crop side (default: 224)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="batch (default: 32 CPU, 256 GPU)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="timed rounds of one plain epoch then one Ray epoch (default: 2)",
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="cores used (default: all)")
    parser.add_argument(
        "--storage", default=None, help="shards and checkpoints (default: a temporary folder)"
    )
    parser.add_argument(
        "--out",
        default="dgqa_output/benchmarks/training.csv",
        help="CSV of the table (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``jobs/benchmark.py training [options]``: run, print, write the CSV."""
    args = get_args_parser().parse_args(argv)
    rows = run_training_benchmark(
        args.images,
        device=args.device,
        backbone=args.backbone,
        crop=args.crop,
        batch_size=args.batch_size,
        rounds=args.rounds,
        num_cpus=args.num_cpus,
        storage_uri=args.storage,
    )
    if args.out:
        print(f"table: {write_rows_csv(rows, args.out)}")
    return 0
