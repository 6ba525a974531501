"""What the pipeline logs to MLflow besides metrics: each trained model (behind its
preprocessing, with the metadata a user needs to run it) and the ingested datasets each stage
used (name, fingerprint, location, size)."""

from __future__ import annotations

from collections.abc import Sequence

from dgqa_ray.config import PipelineConfig

from .roles import (
    RoleData,
)

MODEL_EXAMPLE_BATCH = 2
"""Images in a logged model's input example (the batch dimension stays free: 2, not 1, so that
``torch.export`` does not fix it)."""


def log_trained_model(
    run, cfg: PipelineConfig, checkpoint: str, task: str, registered_name: str | None = None
) -> str | None:
    """The checkpoint's network, behind its preprocessing (``inference.preprocessed_model``),
    as ``run``'s MLflow model, with what a user needs to run it in its metadata. Returns its
    ``runs:/`` URI; None when ``tracking.log_models`` is off or tracking is inactive."""
    if not (cfg.tracking.log_models and run.active):
        return None
    import numpy as np

    from dgqa_ray.inference import build_model, load_model_state, preprocessed_model

    state = load_model_state(checkpoint)
    module = preprocessed_model(build_model(cfg.model, state, repr(checkpoint), task))
    crop = cfg.data.crop_size
    example = np.random.default_rng(0).integers(
        0, 256, (MODEL_EXAMPLE_BATCH, 3, crop, crop), dtype=np.uint8
    )
    output = (
        "quality on the [0, 10] training scale, higher is better: average it over the crops of "
        "an image"
        if task == "regressor"
        else "logits over KADID distortion types 1..25 (0 = pristine with 26 classes)"
    )
    metadata = {
        "task": task,
        "backbone": cfg.model.backbone,
        "num_outputs": 1 if task == "regressor" else cfg.model.num_classes,
        "crop_size": crop,
        "eval_crops": cfg.data.eval_crops,
        "input": f"uint8 RGB crops (B, 3, {crop}, {crop}), 0-255; the model scales them to "
        "[0, 1] and ImageNet-normalises them",
        "output": output,
        "checkpoint": checkpoint,
    }
    return run.log_model(
        module, example=example, metadata=metadata, registered_name=registered_name
    )


def log_dataset_inputs(run, inputs: Sequence[tuple[RoleData, str]]) -> None:
    """Each ``(role data, context)`` as one of ``run``'s MLflow dataset inputs: the ingested
    version's name, fingerprint (the digest), location and size."""
    if not run.active:
        return
    from dgqa_ray.data import shards

    for data, context in inputs:
        uri = shards.dataset_uri(data.storage_uri, data.dataset)
        manifest = shards.read_manifest(uri)
        run.log_dataset(
            name=data.dataset,
            fingerprint=manifest.source_fingerprint,
            uri=uri,
            rows=manifest.row_count,
            context=context,
            version=manifest.version,
        )
