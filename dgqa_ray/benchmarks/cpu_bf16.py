"""CPU training speed of float32 against bf16 autocast + channels_last (``model.cpu_bf16``).

    python jobs/benchmark.py cpu-bf16                      # resnet18 at 64 px, batch 32
    python jobs/benchmark.py cpu-bf16 --backbone resnet50 --crop 96 --steps 6

A plain torch loop (forward, cross-entropy, backward, SGD step) on random images, both formats
in the same process, alternated round by round so that load changes hit both alike. It prints
images/s per format and the ratio, and which bf16 units the CPU reports (``models.cpu_bf16_units``):
``model.cpu_bf16: auto`` turns bf16 on exactly where this ratio is above 1.
"""

from __future__ import annotations

import argparse
import time


def _steps_per_second(model, batch, labels, bf16: bool, steps: int) -> float:
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(batch)
        loss = torch.nn.functional.cross_entropy(out.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN picks its kernels on the first call
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - started)


def run(backbone: str, crop: int, batch_size: int, steps: int, rounds: int, threads: int | None):
    import torch
    from torchvision import models as tv_models

    from dgqa_ray.models import cpu_bf16_units

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = torch.randn(batch_size, 3, crop, crop)
    labels = torch.randint(0, 25, (batch_size,))
    fp32 = tv_models.get_model(backbone, weights=None, num_classes=25)
    bf16 = tv_models.get_model(backbone, weights=None, num_classes=25)
    bf16 = bf16.to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)
    rates: dict[str, list[float]] = {"float32": [], "bf16+channels_last": []}
    for _ in range(rounds):
        rates["float32"].append(_steps_per_second(fp32, images, labels, False, steps))
        rates["bf16+channels_last"].append(_steps_per_second(bf16, images_cl, labels, True, steps))
    best = {k: max(v) * batch_size for k, v in rates.items()}
    ratio = best["bf16+channels_last"] / best["float32"]
    units = cpu_bf16_units() or "none"
    print(
        f"{backbone} at {crop} px, batch {batch_size}, {torch.get_num_threads()} threads, "
        f"CPU bf16 units: {units}"
    )
    for name, value in best.items():
        print(f"  {name:<20} {value:7.1f} img/s (best of {rounds} rounds of {steps} steps)")
    print(f"  ratio bf16 / float32: {ratio:.2f}x")
    return best, ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmark.py cpu-bf16",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backbone", default="resnet18", help="(default: %(default)s)")
    parser.add_argument("--crop", type=int, default=64, help="pixels (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="(default: torch's)")
    args = parser.parse_args(argv)
    for name in ("crop", "batch_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer")
    run(args.backbone, args.crop, args.batch_size, args.steps, args.rounds, args.threads)
    return 0
