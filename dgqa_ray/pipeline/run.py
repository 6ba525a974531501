"""The end-to-end flow (:func:`run_pipeline`): data, classifier, selection, regressors per
split, evaluation on the target, report; one MLflow parent run with nested runs per stage."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from dgqa_ray.config import PipelineConfig, save_config

from .mlflow_logging import log_dataset_inputs, log_trained_model
from .outputs import (
    PREDICTIONS_FILE,
    PipelineResult,
    classifier_figures,
    epoch_choice,
    image_paths,
    scored_line,
    split_median,
    write_report,
    write_summary,
    write_target_predictions,
)
from .roles import (
    check_data_roots,
    dataset_key,
    target_has_scores,
)
from .stages import (
    prepare_stages,
    regressor_init_checkpoint,
    regressor_run_name,
    regressor_variants,
    say,
    start_over,
    train_and_evaluate,
)


def run_pipeline(cfg: PipelineConfig, *, check_roots: bool = True) -> PipelineResult:
    """Run (or resume) the whole pipeline; see the module docstring. ``check_roots``: check
    every role's raw dataset first (``check_data_roots``; False when the caller just did)."""
    from dgqa_ray import reports
    from dgqa_ray.selection import distortion_names
    from dgqa_ray.tracking import Tracker, mlflow_ui_command
    from dgqa_ray.train import init_ray_for_training

    started = time.monotonic()
    timings: dict[str, float] = {}
    # Before Ray starts: a wrong root costs seconds, and whether SRCC/PLCC can be measured
    # is known before any compute.
    labelled = check_data_roots(cfg) if check_roots else target_has_scores(cfg)
    if not labelled:
        say(
            "target: no scores (unlabelled): data, classifier, selection and regressors run, "
            f"SRCC/PLCC are not measured; predicted scores go to {PREDICTIONS_FILE}",
        )
    cfg = init_ray_for_training(cfg)  # checks fit, first
    run_dir = Path(cfg.output_dir) / "runs" / cfg.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = save_config(cfg, str(run_dir / "config.yaml"))
    say(f"run {cfg.run_name!r}: results in {run_dir.resolve()}; config {config_path}")
    from dgqa_ray.ray_session import where_logs_are

    if logs_line := where_logs_are():
        say(logs_line)
    names = distortion_names()

    with Tracker(cfg) as tracker:
        tracker.log_config(cfg)
        tracker.set_tags({"stage": "running"})

        # 1-3. data, classifier, selection
        prepared = prepare_stages(cfg, tracker, timings)
        log_dataset_inputs(
            tracker.parent,
            [
                (prepared.roles["classifier"], "training"),
                (prepared.source, "training"),
                (prepared.target, "evaluation"),
            ],
        )
        selection, other = prepared.outcome.selection, prepared.outcome.other
        selected = [int(t) for t in selection.selected]
        target_types = prepared.target_types
        if not selected:
            raise RuntimeError(
                "selection: no source type passed the rule; lower selection.tau or use "
                "selection.rule=topk_vote"
            )
        target_ds = prepared.target_ds

        # 4. regressors and evaluation
        t0 = time.monotonic()
        rows, histories, predictions = [], [], {}
        models: dict[str, str | None] = {}  # the DGQA regressor of split 0, for scoring
        eval_dir = run_dir / "evaluation"
        variants = regressor_variants(cfg, selected, target_types)
        init = regressor_init_checkpoint(cfg, prepared.classifier)
        target_key = dataset_key(prepared.target)
        for split in range(cfg.eval.n_splits):
            for variant, dist_types in variants.items():
                name = regressor_run_name(cfg.run_name, variant, dist_types, split)
                start_over(cfg, "regressors", name)
                with tracker.nested(name) as run:
                    metrics, per_image, result = train_and_evaluate(
                        cfg,
                        prepared.source,
                        target_ds,
                        dist_types,
                        split,
                        name,
                        eval_dir,
                        init_checkpoint=init,
                        target_key=target_key,
                    )
                    for epoch, entry in enumerate(result.history):
                        run.log_metrics(entry, step=epoch)
                    run.log_params(
                        {
                            "variant": variant,
                            "split": split,
                            "dist_types": "all"
                            if dist_types is None
                            else ",".join(map(str, dist_types)),
                            "checkpoint": result.best_checkpoint,
                        }
                    )
                    run.log_metrics(
                        {f"target_{k}": v for k, v in metrics.items() if v == v}  # not NaN
                    )
                    run.log_artifact(str(eval_dir / f"{name}.csv"))
                    log_dataset_inputs(
                        run, [(prepared.source, "training"), (prepared.target, "evaluation")]
                    )
                    first_dgqa = variant == "dgqa" and split == 0
                    model_uri = log_trained_model(
                        run,
                        cfg,
                        result.best_checkpoint,
                        "regressor",
                        registered_name=cfg.tracking.registered_model if first_dgqa else None,
                    )
                    if first_dgqa:
                        models = {"checkpoint": result.best_checkpoint, "mlflow": model_uri}
                predictions[variant, split] = per_image
                rows.append(
                    {
                        "variant": variant,
                        "split": split,
                        "n_types": 25 if dist_types is None else len(dist_types),
                        **metrics,
                    }
                )
                histories.append(epoch_choice(variant, split, result))
                say(f"split {split} {variant:<8}: " + scored_line(metrics, per_image))
        timings["regressors"] = time.monotonic() - t0
        predictions_path = write_target_predictions(
            run_dir, predictions, image_paths(prepared.target)
        )

        # 5. report
        per_split = pd.DataFrame(rows)
        target_key = reports.target_key(cfg.data.target_dataset, cfg.data.target_subset)
        paper = reports.paper_numbers_from_dir(reports.reference_dir(), target_key)
        results = reports.results_table(per_split, paper=paper)
        per_split.to_csv(run_dir / "per_split.csv", index=False)
        epochs = pd.DataFrame(histories)
        epochs.to_csv(run_dir / "regressor_epochs.csv", index=False)
        written = reports.write_results(results, str(run_dir), title=f"DGQA run {cfg.run_name}")
        figures = []
        if labelled:
            figure = reports.plot_predictions(
                predictions["dgqa", 0], title="Target, DGQA split 0: predicted vs true"
            )
            scatter = run_dir / "target_scatter_dgqa_split0.png"
            figure.savefig(scatter, dpi=100)
            figures.append(str(scatter))
        report_path = write_report(
            cfg,
            run_dir,
            results,
            selected,
            selection.rule,
            other.rule,
            other.selected,
            target_types,
            names,
            timings,
            prepared.classifier,
            epochs,
            labelled=labelled,
            predictions_path=predictions_path,
        )
        gain = reports.dgqa_gain(results)
        medians = {
            f"target_{metric}_{variant}": split_median(per_split, variant, metric)
            for variant in variants
            for metric in ("srcc", "plcc")
        }
        tracker.log_metrics(
            {
                **{k: v for k, v in medians.items() if v == v},  # none on an unlabelled target
                **({"dgqa_gain_srcc": gain["srcc"]} if gain["srcc"] == gain["srcc"] else {}),
                "n_selected": len(selected),
            }
        )
        tracker.log_params({"selected_types": ",".join(map(str, selected)), "rule": selection.rule})
        timings["total"] = time.monotonic() - started
        summary_path = write_summary(
            run_dir,
            cfg,
            prepared.classifier,
            selected,
            selection.rule,
            target_types,
            per_split,
            timings["total"],
            labelled=labelled,
            dgqa_model=models,
        )
        for path in (*written.values(), *figures, report_path, config_path, summary_path):
            tracker.log_artifact(path)
        tracker.log_artifact(predictions_path)
        tracker.set_tags({"stage": "done"})
        # Point at the UI only for a store that took the runs.
        ui = mlflow_ui_command(cfg) if tracker.active else ""
        ui_url = tracker.experiment_url() or ""
        if not ui and cfg.tracking.enabled:
            ui = f"(not recorded: {tracker.failure or 'tracking off'})"

    return PipelineResult(
        run_dir=str(run_dir),
        selected=selected,
        rule=selection.rule,
        results=results,
        per_split=per_split,
        report_path=report_path,
        mlflow_ui=ui,
        mlflow_url=ui_url,
        target_types=target_types,
        timings=timings,
        classifier_metrics=classifier_figures(prepared.classifier),
        summary_path=summary_path,
        predictions_path=predictions_path,
        labelled=labelled,
        dgqa_model=models,
    )
