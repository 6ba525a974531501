"""What limits the embedded default: the demo preset with one setting changed per row.

    python jobs/benchmark.py ablation                          # every row (about 75 minutes)
    python jobs/benchmark.py ablation --rows demo,stored,no-dead-leaves
    python jobs/benchmark.py ablation --list                   # the rows and what they change

Each row is the ``demo`` preset plus its overrides, run through the pipeline's own stages on a
local Ray (``pipeline.prepare_stages``: pools, ingestion, classifier, selection; then
``pipeline.train_and_evaluate`` for the regressors of source split 0), under its own output
folder so that no row reuses another's models. A row reports:

- the classifier's held-out top-1 / top-3 (25 classes, all levels, references it never trained
  on) at the checkpoint used (chosen on those references);
- the selection against the embedded target's true types (recovered of 6, extra types);
- the target SRCC of the regressors of split 0: baseline (all types), DGQA (the selection) and
  the oracle (the true types);
- the wall time of the row.

Rows are appended to the CSV as they finish; a rerun skips rows already there (``--force``
reruns them). The table is printed at the end, with the demo row first as the baseline the
others are read against. Classifier rows change the classifier or its data (and so everything
after it); regressor rows keep the demo's classifier and change only the regressors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

# key -> (what it changes, overrides of the demo preset)
ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "demo": ("the demo preset as shipped", ()),
    "stored": (
        "classifier on the stored pool (5 types x 5 levels per reference, KADIS protocol), "
        "as many steps as the demo",
        ("data.classifier_view=stored", "train.classifier_epochs=10"),
    ),
    "no-dead-leaves": (
        "classifier pool without the 64 dead-leaves references (65 photo tiles)",
        ("demo.dead_leaves=0",),
    ),
    "constant-lr": (
        "no warmup/cosine schedule (constant learning rate) for both models",
        ("train.lr_schedule=constant",),
    ),
    "classifier-2-epochs": ("half the classifier's training", ("train.classifier_epochs=2",)),
    "classifier-8-epochs": ("twice the classifier's training", ("train.classifier_epochs=8",)),
    "crop-96": ("96-pixel crops (the whole tile height) for both models", ("data.crop_size=96",)),
    "mobilenet": (
        "mobilenet_v3_small instead of resnet18 for both models",
        ("model.backbone=mobilenet_v3_small",),
    ),
    "26-classes": (
        "the authors' 26 classes (pristine = class 0, never selected)",
        ("model.num_classes=26",),
    ),
    "source-8-tiles": (
        "8 source tiles instead of 24 (1,000 labelled images)",
        ("demo.source_refs=8",),
    ),
}
REGRESSOR_ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "regressor-finetune-all": (
        "regressors fine-tune every layer of the classifier's backbone (lr 1e-4)",
        ("train.regressor_trainable=all", "train.lr=1e-4"),
    ),
    "regressor-from-scratch": (
        "regressors from random weights, every layer trained (lr 1e-3), as before this change",
        ("model.regressor_init=pretrained", "train.regressor_trainable=all", "train.lr=1e-3"),
    ),
    "regressor-2-epochs": ("two regressor epochs instead of three", ("train.epochs=2",)),
    "regressor-6-epochs": ("twice the regressors' epochs", ("train.epochs=6",)),
}
ALL_ROWS = {**ROWS, **REGRESSOR_ROWS}


def _row_config(key: str, base_dir: Path, extra: list[str]):
    from dgqa_ray.config import load_config

    classifier_key = "demo" if key in REGRESSOR_ROWS else key
    folder = base_dir / classifier_key
    overrides = [
        f"run_name=abl-{classifier_key}",
        f"output_dir={folder}",
        f"storage={folder / 'storage'}",
        "tracking.enabled=false",
        "eval.n_splits=1",
        *ROWS.get(classifier_key, ("", ()))[1],
        *(ALL_ROWS[key][1] if key in REGRESSOR_ROWS else ()),
        *extra,
    ]
    return load_config("demo", overrides)


def run_row(key: str, base_dir: Path, extra: list[str]) -> dict[str, Any]:
    """One row: stages up to the selection (reused for regressor rows), then split 0's
    regressors; returns the row of the table."""
    from dgqa_ray.pipeline import (
        dataset_key,
        prepare_stages,
        regressor_init_checkpoint,
        regressor_variants,
        train_and_evaluate,
    )
    from dgqa_ray.reports import selection_quality
    from dgqa_ray.search.results import quiet_tracker

    cfg = _row_config(key, base_dir, extra)
    started = time.monotonic()
    prepared = prepare_stages(cfg, quiet_tracker(cfg), print)
    selected = [int(t) for t in prepared.outcome.selection.selected]
    truth = prepared.target_types or []
    quality = selection_quality(selected, truth)
    best = prepared.classifier.best_metrics
    row: dict[str, Any] = {
        "row": key,
        "changes": ALL_ROWS[key][0],
        "classifier_top1": best.get("val_accuracy"),
        "classifier_top3": best.get("val_top3_accuracy"),
        "recovered": len(quality["recovered"]),
        "extra": len(quality["extra"]),
        "selected": " ".join(map(str, selected)),
    }
    init = regressor_init_checkpoint(cfg, prepared.classifier)
    suffix = key if key in REGRESSOR_ROWS else "base"
    for variant, types in regressor_variants(cfg, selected, truth).items():
        name = f"{cfg.run_name}-{suffix}-{variant}-split0"
        metrics, _, _ = train_and_evaluate(
            cfg,
            prepared.source,
            prepared.target_ds,
            types,
            0,
            name,
            prepared.run_dir / "evaluation",
            init_checkpoint=init,
            target_key=dataset_key(prepared.target),
        )
        row[f"{variant}_srcc"] = metrics["srcc"]
    row["seconds"] = time.monotonic() - started
    return row


def run_ablation(
    rows: list[str], out_csv: str, base_dir: str, extra: list[str], force: bool = False
) -> pd.DataFrame:
    """Run the rows not yet in ``out_csv`` (all of ``rows`` with ``force``); print the table."""
    from dgqa_ray.reports import markdown_table
    from dgqa_ray.train import init_ray_for_training

    out = Path(out_csv)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["row"])
    if force:
        done = done[~done["row"].isin(rows)]
    init_ray_for_training(_row_config("demo", Path(base_dir), extra))
    for key in rows:
        if key in set(done["row"]):
            print(f"[ablation] {key}: already in {out}, skipped (--force reruns it)")
            continue
        print(f"[ablation] {key}: {ALL_ROWS[key][0]}")
        row = run_row(key, Path(base_dir), extra)
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        done.to_csv(out, index=False)
        print(f"[ablation] {key}: {row}")
    order = [k for k in ALL_ROWS if k in set(done["row"])]
    table = done.set_index("row").loc[order].reset_index()
    shown = table.drop(columns=["changes", "selected"], errors="ignore")
    print("\nAblation of the embedded default (split 0; SRCC on the embedded target):\n")
    print(markdown_table(shown, floatfmt=".3f"))
    print(f"\nwrote {out}")
    return table


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobs/benchmark.py ablation",
        description="The demo preset with one setting changed per row: classifier accuracy, "
        "selection and regressor transfer on the embedded default.",
    )
    parser.add_argument(
        "--rows",
        default=",".join(ALL_ROWS),
        help="comma-separated row keys (default: all; --list shows them)",
    )
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument("--force", action="store_true", help="rerun rows already in the CSV")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="an override applied to every row (repeatable)",
    )
    parser.add_argument(
        "--out",
        default="dgqa_output/benchmarks/ablation.csv",
        help="CSV path (default: %(default)s)",
    )
    parser.add_argument(
        "--work-dir",
        default="dgqa_output/ablation",
        help="where each row's pools, checkpoints and reports go (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from dgqa_ray.config import ConfigError

    args = get_args_parser().parse_args(argv)
    if args.list:
        for key, (text, overrides) in ALL_ROWS.items():
            print(f"{key:24s} {text}  [{' '.join(overrides) or 'no override'}]")
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown:
        print(f"benchmark ablation: error: unknown rows {unknown}; known: {', '.join(ALL_ROWS)}")
        return 2
    try:
        for key in rows:  # every row's config is checked before any of them runs
            _row_config(key, Path(args.work_dir), args.overrides)
    except ConfigError as e:
        print(f"benchmark ablation: error: {e}")
        return 2
    run_ablation(rows, args.out, args.work_dir, args.overrides, force=args.force)
    return 0


__all__ = ["ALL_ROWS", "REGRESSOR_ROWS", "ROWS", "run_ablation", "run_row"]
