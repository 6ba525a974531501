"""The end-to-end DGQA flow behind ``jobs/full_pipeline.py``.

    data       synthesize the embedded default, or take raw datasets; ingest each into shards
    classifier train F_D on the classifier dataset (Ray Train), checkpoint per epoch
    selection  F_D over the target (Ray Data batch inference, 5 crops averaged), similarity per
               type, the configured rule (the other rule is computed and logged too)
    regressors per source split (the paper's 5 reference-grouped 80/20 splits): one regressor
               on all 25 types (baseline) and one on the selected types (DGQA)
    evaluation each regressor on the target (5 crops averaged): SRCC, PLCC, KRCC
    report     median over splits, ours next to the paper's where the target matches

Every stage is reused on a rerun (ingested datasets by fingerprint, training runs by name and
checkpoint, the similarity table and per-run evaluations from files) unless ``cfg.redo`` names
it. One MLflow parent run per pipeline run, nested runs per stage (``tracking.py``).

One concept per file:

- ``roles.py``: where each role's data comes from, the checks before any compute, ingestion.
- ``stages.py``: the classifier, the selection and the regressors (shared with the searches).
- ``mlflow_logging.py``: the trained models and dataset inputs each stage logs to MLflow.
- ``outputs.py``: ``summary.json``, ``target_predictions.csv``, the report, the console summary.
- ``run.py``: the flow from start to end (:func:`run_pipeline`).
"""

from .mlflow_logging import (
    log_dataset_inputs,
    log_trained_model,
)
from .outputs import (
    PREDICTIONS_FILE,
    SUMMARY_FILE,
    PipelineResult,
    pipeline_summary,
    write_summary,
    write_target_predictions,
)
from .roles import (
    EMBEDDED,
    ROLES,
    RoleData,
    check_data_roots,
    dataset_key,
    ingest_all,
    resolve_data,
    target_has_scores,
)
from .run import (
    run_pipeline,
)
from .stages import (
    PreparedRun,
    SelectionOutcome,
    domain_key,
    evaluate_on_target,
    inference_options,
    prepare_stages,
    regressor_init_checkpoint,
    regressor_run_name,
    regressor_variants,
    select_target_domains,
    selection_stage,
    target_metrics,
    train_and_evaluate,
    train_classifier_stage,
)

__all__ = [
    "EMBEDDED",
    "PREDICTIONS_FILE",
    "PipelineResult",
    "PreparedRun",
    "ROLES",
    "RoleData",
    "SUMMARY_FILE",
    "SelectionOutcome",
    "check_data_roots",
    "dataset_key",
    "domain_key",
    "evaluate_on_target",
    "inference_options",
    "ingest_all",
    "log_dataset_inputs",
    "log_trained_model",
    "pipeline_summary",
    "prepare_stages",
    "regressor_init_checkpoint",
    "regressor_run_name",
    "regressor_variants",
    "resolve_data",
    "run_pipeline",
    "select_target_domains",
    "selection_stage",
    "target_has_scores",
    "target_metrics",
    "train_and_evaluate",
    "train_classifier_stage",
    "write_summary",
    "write_target_predictions",
]
