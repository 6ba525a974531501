"""What a pipeline run leaves behind: ``summary.json``, ``target_predictions.csv``, the markdown
report (ours next to the paper's where the target matches) and the console summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dgqa_ray.config import PipelineConfig

from .roles import (
    EMBEDDED,
    RoleData,
)

SUMMARY_FILE = "summary.json"


PREDICTIONS_FILE = "target_predictions.csv"


@dataclass
class PipelineResult:
    run_dir: str
    selected: list[int]
    rule: str
    results: pd.DataFrame
    per_split: pd.DataFrame
    report_path: str
    mlflow_ui: str
    target_types: list[int] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    classifier_metrics: dict[str, Any] = field(default_factory=dict)
    summary_path: str = ""
    predictions_path: str = ""  # target_predictions.csv: every target image's predicted scores
    labelled: bool = True  # whether the target has scores (SRCC/PLCC measured)
    dgqa_model: dict[str, str | None] = field(default_factory=dict)  # checkpoint, mlflow URI
    mlflow_url: str = ""  # the experiment's runs view in the MLflow UI


def epoch_choice(variant: str, split: int, result) -> dict[str, Any]:
    """Which epoch a regressor's best checkpoint is (chosen on the *source* validation split)
    next to its last epoch."""
    best, last = result.best_metrics, result.final_metrics
    return {
        "variant": variant,
        "split": split,
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "best_val_srcc": best.get("val_srcc"),
        "last_epoch": int(last.get("epoch", -1)) + 1,
        "last_val_srcc": last.get("val_srcc"),
    }


def classifier_figures(classifier) -> dict[str, Any]:
    """The classifier's held-out figures at its best epoch (chosen on its own validation
    references) and at its last."""
    best, last = classifier.best_metrics, classifier.final_metrics
    out = {
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "last_epoch": int(last.get("epoch", -1)) + 1,
    }
    for key in ("val_accuracy", "val_top3_accuracy", "val_loss", "val_images"):
        if key in best:
            out[f"best_{key}"] = best[key]
        if key in last:
            out[f"last_{key}"] = last[key]
    out["best_val_accuracy_per_level"] = [best.get(f"val_accuracy_level{v}") for v in range(1, 6)]
    return out


def scored_line(metrics: dict[str, float], per_image: pd.DataFrame) -> str:
    """One regressor's console line: its target SRCC/PLCC, or what it scored when the target
    has no scores (or only some)."""
    n, scored = len(per_image), int(metrics["n_scored"])
    if scored == 0:
        return f"predicted {n} target images (no target scores: SRCC/PLCC not measured)"
    part = "" if scored == n else f" (over the {scored} of {n} images that have a score)"
    return f"target SRCC {metrics['srcc']:.4f} PLCC {metrics['plcc']:.4f}{part}"


def image_paths(data: RoleData) -> pd.DataFrame:
    """``image_id, path`` of a role's images, in its index's order (where each file was read)."""
    from dgqa_ray.data.adapters import open_adapter

    index = open_adapter(data.adapter, data.root, **data.options).index()
    return index[["image_id", "path"]].astype({"image_id": str})


def write_target_predictions(
    run_dir: Path, predictions: dict[tuple[str, int], pd.DataFrame], paths: pd.DataFrame
) -> str:
    """``<run_dir>/target_predictions.csv`` (written atomically): one row per target image that
    was ingested, in the target index's order: ``image_id``, ``path``, then one column per
    regressor variant (``dgqa``, ``baseline``, ...: the predicted quality on the [0, 10] score
    scale, higher is better, averaged over the variant's split regressors) and ``score`` (the
    target's own normalised score) where the target has scores.

    ``predictions``: ``(variant, split) -> train_and_evaluate``'s per-image table."""
    columns: dict[str, list[pd.Series]] = {}
    for (variant, _), per_image in predictions.items():
        table = per_image.astype({"image_id": str}).set_index("image_id")
        columns.setdefault(variant, []).append(table["predicted"])
    out = pd.DataFrame({v: pd.concat(parts, axis=1).mean(axis=1) for v, parts in columns.items()})
    first = next(iter(predictions.values())).astype({"image_id": str}).set_index("image_id")
    if first["score"].notna().any():
        out["score"] = first["score"]
    out = paths.merge(out, left_on="image_id", right_index=True, how="inner")
    path = Path(run_dir) / PREDICTIONS_FILE
    tmp = path.with_suffix(".csv.tmp")
    out.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(path)
    return str(path)


def write_summary(
    run_dir: Path,
    cfg: PipelineConfig,
    classifier,
    selected: Sequence[int],
    rule: str,
    target_types: Sequence[int] | None,
    per_split: pd.DataFrame,
    wall_seconds: float,
    *,
    labelled: bool = True,
    dgqa_model: dict[str, str | None] | None = None,
) -> str:
    """``<run_dir>/summary.json``: the machine-readable result of a run (written atomically).

    Keys: ``classifier_val_accuracy`` / ``classifier_val_top3_accuracy`` (held-out top-1/top-3
    at the checkpoint used, chosen on the classifier's validation references), ``selected``
    (type ids of the configured ``rule``), ``target_types`` (the true types, embedded target
    only, else null), ``selection_precision`` / ``selection_recall`` (null without true
    types), ``baseline_srcc`` / ``dgqa_srcc`` / ``oracle_srcc`` and the PLCCs (medians over
    splits; null where not computed, and all null on an unlabelled target), ``n_splits``,
    ``wall_seconds``, ``target_labelled`` (whether the target had scores) and
    ``target_predictions`` (the file, in the run folder, with every target image's scores)
    and ``dgqa_model`` (the DGQA regressor of split 0: its ``checkpoint`` and its ``mlflow``
    model URI, null when not logged), what ``jobs/score.py --model`` takes.
    """
    import json
    import math

    from dgqa_ray import reports

    def median(variant: str, metric: str) -> float | None:
        part = per_split.loc[per_split["variant"] == variant, metric]
        value = float(part.median()) if len(part) else float("nan")
        return None if math.isnan(value) else round(value, 4)

    figures = classifier_figures(classifier)
    quality = reports.selection_quality(selected, target_types) if target_types else None
    summary = {
        "run_name": cfg.run_name,
        "classifier_val_accuracy": figures.get("best_val_accuracy"),
        "classifier_val_top3_accuracy": figures.get("best_val_top3_accuracy"),
        "classifier_best_epoch": figures["best_epoch"],
        "classifier_epochs": figures["last_epoch"],
        "rule": rule,
        "selected": [int(t) for t in selected],
        "target_types": [int(t) for t in target_types] if target_types else None,
        "selection_precision": None if quality is None else round(quality["precision"], 4),
        "selection_recall": None if quality is None else round(quality["recall"], 4),
        "baseline_srcc": median("baseline", "srcc"),
        "dgqa_srcc": median("dgqa", "srcc"),
        "oracle_srcc": median("oracle", "srcc"),
        "baseline_plcc": median("baseline", "plcc"),
        "dgqa_plcc": median("dgqa", "plcc"),
        "oracle_plcc": median("oracle", "plcc"),
        "n_splits": int(per_split["split"].nunique()),
        "wall_seconds": round(float(wall_seconds), 1),
        "target_labelled": bool(labelled),
        "target_predictions": PREDICTIONS_FILE,
        "dgqa_model": dict(dgqa_model or {}),
    }
    path = run_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
    return str(path)


def split_median(per_split: pd.DataFrame, variant: str, metric: str) -> float:
    return float(per_split.loc[per_split["variant"] == variant, metric].median())


def write_report(
    cfg,
    run_dir,
    results,
    selected,
    rule,
    other_rule,
    other_selected,
    target_types,
    names,
    timings,
    classifier,
    epochs: pd.DataFrame,
    *,
    labelled: bool = True,
    predictions_path: str = "",
) -> str:
    from dgqa_ray import reports

    lines = [f"# DGQA pipeline run `{cfg.run_name}`", ""]
    lines += [
        f"Classifier data: `{cfg.data.classifier_dataset}` ({cfg.data.classifier_view}), source: "
        f"`{cfg.data.source_dataset}`, target: `{cfg.data.target_dataset}`; backbone "
        f"{cfg.model.backbone} at {cfg.data.crop_size}px; regressors start from "
        f"`{cfg.model.regressor_init}` and train `{cfg.train.regressor_trainable}`; "
        f"{cfg.eval.n_splits} source split(s).",
        "",
    ]
    if EMBEDDED in (cfg.data.source_dataset, cfg.data.target_dataset):
        lines += [
            "Scores of the embedded default are **full-reference proxies** computed against the "
            "pristine tiles, not subjective ratings.",
            "",
        ]
    figures = classifier_figures(classifier)
    lines += ["## Domain classifier (held-out references)", ""]
    lines += [
        "| epoch | used | top-1 | top-3 | loss |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for entry in classifier.history:
        epoch = int(entry["epoch"]) + 1
        lines.append(
            f"| {epoch} | {'yes' if epoch == figures['best_epoch'] else ''} | "
            f"{entry.get('val_accuracy', float('nan')):.3f} | "
            f"{entry.get('val_top3_accuracy', float('nan')):.3f} | "
            f"{entry.get('val_loss', float('nan')):.3f} |"
        )
    per_level = figures["best_val_accuracy_per_level"]
    if any(v is not None for v in per_level):
        lines += [
            "",
            "Top-1 by level at the epoch used (level 1 is the mildest; several types are "
            "identities or nearly so there): "
            + ", ".join(f"L{i + 1} {v:.3f}" for i, v in enumerate(per_level) if v is not None)
            + ".",
        ]
    lines += ["", f"## Selected source types (rule `{rule}`)", ""]
    lines.append(
        reports.selection_markdown(
            selected, names, reference=target_types, reference_label="the target's mixture types"
        )
        if target_types
        else reports.selection_markdown(selected, names)
    )
    if target_types:
        quality = reports.selection_quality(selected, target_types)
        lines += [
            "",
            f"Precision {quality['precision']:.2f} (selected types that the target has), "
            f"recall {quality['recall']:.2f} (target types selected).",
        ]
    lines += ["", f"The other rule, `{other_rule}`, would select: {list(other_selected)}.", ""]
    if labelled:
        lines += ["## Target SRCC/PLCC (median over splits)", ""]
        lines += [reports.markdown_table(results), ""]
    else:
        lines += [
            "## Target scores",
            "",
            "The target has no scores, so SRCC/PLCC were not measured. Every target image's "
            f"predicted quality (0-10, higher is better) is in `{Path(predictions_path).name}`.",
            "",
        ]
    if "oracle" in set(results.get("variant", [])):
        lines += [
            "`oracle` trains on exactly the target's true types: the best any selection could "
            "pick (it uses knowledge no real target gives).",
            "",
        ]
    if not epochs.empty:
        lines += [
            "Regressor checkpoints are chosen on the source validation split, never on the target:",
            "",
            reports.markdown_table(epochs),
            "",
        ]
    lines += [
        reports.selections_across_targets(
            cfg.output_dir, reports.reference_dir(), truth=target_types
        ),
        "",
    ]
    lines += ["## Timings", ""]
    lines += [f"- {stage}: {seconds:.0f} s" for stage, seconds in timings.items()]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def pipeline_summary(result: PipelineResult) -> str:
    """What ``jobs/full_pipeline.py`` prints at the end."""
    from dgqa_ray import reports

    figures = result.classifier_metrics
    lines = [""]
    if figures.get("best_val_accuracy") is not None:
        lines.append(
            f"Classifier, held-out references: top-1 {figures['best_val_accuracy']:.3f}, "
            f"top-3 {figures.get('best_val_top3_accuracy', float('nan')):.3f} (epoch "
            f"{figures['best_epoch']} of {figures['last_epoch']}; 25 classes, chance 0.04)"
        )
    lines.append(f"Selected types ({result.rule}): {result.selected}")
    if result.target_types:
        quality = reports.selection_quality(result.selected, result.target_types)
        lines.append(
            f"Target mixture types: {result.target_types}; recovered "
            f"{len(quality['recovered'])}/{len(result.target_types)} {quality['recovered']}, "
            f"also picked {quality['extra']} (precision {quality['precision']:.2f}, recall "
            f"{quality['recall']:.2f})"
        )
    if result.labelled:
        lines += ["", reports.markdown_table(result.results), ""]
    else:
        lines += ["", "The target has no scores: SRCC/PLCC not measured.", ""]
    lines.append(f"Target predictions: {result.predictions_path}")
    lines.append(f"Report: {result.report_path}")
    lines.append(f"Summary: {result.summary_path}")
    lines.append(f"Results and checkpoints: {result.run_dir}")
    model = result.dgqa_model.get("mlflow") or result.dgqa_model.get("checkpoint")
    if model:
        lines.append(
            f"Score new images: python jobs/score.py --model {model} --images <folder> "
            "--out scores.csv"
        )
    if result.mlflow_ui.startswith("mlflow "):
        lines.append(f"MLflow UI: {result.mlflow_ui}")
        if result.mlflow_url:
            lines.append(f"  then open {result.mlflow_url} (the runs view)")
    elif result.mlflow_url:
        lines.append(f"MLflow: {result.mlflow_url}")
    else:
        lines.append(f"MLflow: {result.mlflow_ui or 'tracking off'}")
    return "\n".join(lines)
